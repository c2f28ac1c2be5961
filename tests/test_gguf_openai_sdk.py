"""The official ``openai`` SDK against the server's /v1 routes."""

from __future__ import annotations

import openai
import pytest


@pytest.fixture(scope="module")
def client(tiny_server):
    return openai.OpenAI(base_url=f"{tiny_server.url}/v1", api_key="unused", max_retries=0, timeout=60)


def test_models_list(client) -> None:
    ids = [m.id for m in client.models.list()]
    assert ids[:3] == ["tiny-a", "tiny-b", "tiny-c"]


def test_completion(client) -> None:
    c = client.completions.create(model="tiny-b", prompt="the capital", max_tokens=6, temperature=0)
    assert c.object == "text_completion" and c.model == "tiny-b"
    assert c.choices[0].finish_reason in ("length", "stop")
    assert c.usage.completion_tokens >= 1
    assert c.usage.total_tokens == c.usage.prompt_tokens + c.usage.completion_tokens


def test_completion_stream_with_usage(client) -> None:
    req = {"model": "tiny-a", "prompt": "the", "max_tokens": 8, "temperature": 0, "extra_body": {"cache_prompt": False}}
    chunks = list(client.completions.create(**req, stream=True, stream_options={"include_usage": True}))
    whole = client.completions.create(**req)
    text_chunks = [c for c in chunks if c.choices]
    assert text_chunks and chunks[-1].usage is not None
    # Usage counts the tokens sampled, not the chunks sent; the streamed text is the whole text.
    assert chunks[-1].usage == whole.usage
    assert "".join(c.choices[0].text for c in text_chunks) == whole.choices[0].text
    assert text_chunks[-1].choices[0].finish_reason == whole.choices[0].finish_reason
    if whole.choices[0].finish_reason == "length":
        assert whole.usage.completion_tokens == 8


def test_chat_completion(client) -> None:
    r = client.chat.completions.create(model="tiny-c", max_tokens=6,
                                       messages=[{"role": "system", "content": "be brief"},
                                                 {"role": "user", "content": "hello"}])
    assert r.object == "chat.completion" and r.model == "tiny-c"
    assert r.choices[0].message.role == "assistant"
    assert isinstance(r.choices[0].message.content, str)
    assert r.usage.prompt_tokens > 0


def test_chat_completion_stream(client) -> None:
    chunks = list(client.chat.completions.create(model="tiny-a", max_tokens=6, stream=True,
                                                 messages=[{"role": "user", "content": "hi"}]))
    assert chunks and all(c.object == "chat.completion.chunk" for c in chunks)
    assert chunks[-1].choices[0].finish_reason in ("length", "stop")


def test_sdk_sees_404_for_unknown_model(client) -> None:
    with pytest.raises(openai.NotFoundError) as exc:
        client.completions.create(model="gpt-4", prompt="x", max_tokens=1)
    assert "tiny-a" in str(exc.value)


def test_sdk_sees_422_for_bad_parameters(client) -> None:
    with pytest.raises(openai.UnprocessableEntityError):
        client.completions.create(model="tiny-a", prompt="x", max_tokens=1, temperature=3)


def test_sdk_sees_503_for_failed_model(client) -> None:
    with pytest.raises(openai.InternalServerError) as exc:
        client.chat.completions.create(model="missing", messages=[{"role": "user", "content": "x"}])
    assert exc.value.status_code == 503


def test_sdk_sees_too_many_choices_and_image_parts_refused(client) -> None:
    with pytest.raises(openai.BadRequestError, match=r"options\.parallel"):
        client.chat.completions.create(model="tiny-a", n=64, max_tokens=2, messages=[{"role": "user", "content": "hi"}])
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
    with pytest.raises(openai.BadRequestError, match="not supported: image input"):
        client.chat.completions.create(model="tiny-a", max_tokens=2, messages=[
            {"role": "user", "content": [{"type": "text", "text": "what is this?"}, image]}])


def test_sdk_reads_which_parameters_were_ignored(client) -> None:
    raw = client.completions.with_raw_response.create(model="tiny-a", prompt="the", max_tokens=1, user="u1",
                                                      extra_body={"foo": 1})
    assert raw.headers["X-Ignored-Parameters"] == "foo, user" and raw.parse().usage.completion_tokens >= 1


def test_sdk_sees_422_for_out_of_bound_metadata_and_stop(client) -> None:
    with pytest.raises(openai.UnprocessableEntityError, match="metadata"):
        client.chat.completions.create(model="tiny-a", max_tokens=1, messages=[{"role": "user", "content": "hi"}],
                                       metadata={f"k{i}": "v" for i in range(17)})
    with pytest.raises(openai.UnprocessableEntityError, match="stop"):
        client.completions.create(model="tiny-a", prompt="the", max_tokens=1, stop=["x" * 257])
