"""Ollama's API (issue 21) through the official ``ollama`` client: list, ps, show, generate, chat
(streamed and not), embed, tools, format and keep_alive on the embedded models; errors in Ollama's
shape."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone

import numpy as np
import ollama
import pytest

pytestmark = pytest.mark.slow
QWEN, GEMMA, MINILM = "qwen2.5-0.5b-instruct", "gemma-3-270m", "all-minilm-l6-v2"
GREEDY = {"temperature": 0}
HELLO = [{"role": "user", "content": "Say hello in French."}]


@pytest.fixture(scope="module")
def client(embedded_server) -> ollama.Client:
    return ollama.Client(host=embedded_server.url, timeout=120)


def test_list_show_and_version(client, embedded_server) -> None:
    models = {m.model: m for m in client.list().models}
    assert list(models) == [GEMMA, QWEN, MINILM]
    assert models[QWEN].details.format == "gguf" and models[QWEN].details.family == "qwen2"
    assert models[QWEN].size == 491_400_064 and models[QWEN].details.quantization_level.startswith("Q4_K")
    assert models[MINILM].details.family == "bert"
    assert client.show(QWEN).capabilities == ["completion", "tools"] and "<|im_start|>" in client.show(QWEN).template
    assert client.show(MINILM).capabilities == ["embedding"]
    assert client.show(GEMMA).capabilities == ["completion"]  # no chat template of its own, no tools
    assert embedded_server.client.get("/api/version").json()["version"].count(".") == 2


def test_chat_streamed_and_not(client) -> None:
    whole = client.chat(model=QWEN, messages=HELLO, options=GREEDY)
    assert whole.done and whole.done_reason == "stop" and "bonjour" in whole.message.content.lower()
    assert whole.eval_count >= 1 and whole.prompt_eval_count > 10 and whole.total_duration >= whole.eval_duration > 0
    parts = list(client.chat(model=QWEN, messages=HELLO, options=GREEDY, stream=True))
    assert len(parts) > 2 and not any(p.done for p in parts[:-1]) and parts[-1].done
    assert parts[-1].done_reason == "stop" and parts[-1].eval_count == whole.eval_count
    assert "bonjour" in "".join(p.message.content for p in parts).lower()
    cut = client.chat(model=QWEN, messages=[{"role": "user", "content": "Count to 50."}],
                      options={**GREEDY, "num_predict": 3})
    assert cut.done_reason == "length" and cut.eval_count == 3


def test_generate_through_the_template_or_raw(client) -> None:
    chat_like = client.generate(model=QWEN, prompt="Say hello in French.", options=GREEDY)
    assert "bonjour" in chat_like.response.lower() and chat_like.done_reason == "stop"
    # Gemma 270M has no chat template: its prompt is continued as it is.
    raw = client.generate(model=GEMMA, prompt="The capital of France is", options={**GREEDY, "num_predict": 8})
    assert raw.done_reason == "length" and raw.eval_count == 8 and raw.response
    streamed = list(client.generate(model=GEMMA, prompt="The capital of France is",
                                    options={**GREEDY, "num_predict": 8}, stream=True))
    assert streamed[-1].done and streamed[-1].eval_count == 8
    assert "".join(p.response for p in streamed).strip()
    stopped = client.generate(model=QWEN, prompt="Say hello in French.", options={**GREEDY, "stop": ["jour"]})
    assert "jour" not in stopped.response.lower()


def test_tools_and_format(client) -> None:
    tools = [{"type": "function", "function": {"name": "get_weather", "description": "Get the weather in a city.",
                                               "parameters": {"type": "object", "required": ["city"],
                                                              "properties": {"city": {"type": "string"}}}}}]
    ask = [{"role": "user", "content": "What is the weather in Paris?"}]
    r = client.chat(model=QWEN, messages=ask, tools=tools, options=GREEDY)
    (call,) = r.message.tool_calls
    assert call.function.name == "get_weather" and call.function.arguments == {"city": "Paris"}
    streamed = [c for p in client.chat(model=QWEN, messages=ask, tools=tools, options=GREEDY, stream=True)
                for c in p.message.tool_calls or []]
    assert [(c.function.name, c.function.arguments) for c in streamed] == [("get_weather", {"city": "Paris"})]
    doc = json.loads(client.chat(model=QWEN, messages=[{"role": "user", "content": "A JSON object about Rome."}],
                                 format="json", options=GREEDY).message.content)
    assert isinstance(doc, dict)
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    doc = json.loads(client.generate(model=QWEN, prompt="Name a city in Spain.", format=schema,
                                     options=GREEDY).response)
    assert isinstance(doc["city"], str)


def test_embed_puts_similar_sentences_closer(client) -> None:
    texts = ["A cat sits on the mat.", "A kitten is sitting on a rug.", "The stock market fell sharply today."]
    r = client.embed(model=MINILM, input=texts)
    v = np.array(r.embeddings)
    assert v.shape == (3, 384) and np.allclose(np.linalg.norm(v, axis=1), 1, atol=1e-4)
    assert v[0] @ v[1] > v[0] @ v[2] + 0.2
    assert r.prompt_eval_count > 10
    one = client.embed(model=MINILM, input=texts[0])
    np.testing.assert_allclose(one.embeddings[0], v[0], atol=1e-4)
    legacy = client.embeddings(model=MINILM, prompt=texts[0])
    np.testing.assert_allclose(legacy.embedding, v[0], atol=1e-4)


def test_keep_alive_sets_when_a_model_is_unloaded_and_ps_says_so(client) -> None:
    assert client.generate(model=GEMMA, prompt="", keep_alive="10m").done_reason == "load"
    expires = {m.model: m.expires_at for m in client.ps().models}
    now = datetime.now(timezone.utc)
    assert timedelta(minutes=9) < expires[GEMMA] - now <= timedelta(minutes=10, seconds=5)
    assert expires[QWEN].year == 9999  # configured to stay (keep_alive -1)
    assert client.generate(model=GEMMA, prompt="", keep_alive=0).done_reason == "unload"
    assert GEMMA not in [m.model for m in client.ps().models]
    # The next request loads it again, and keep_alive 0 on a request unloads it once the answer is out.
    r = client.generate(model=GEMMA, prompt="Hello", options={"num_predict": 2}, keep_alive=0)
    assert r.done and r.eval_count == 2
    deadline = time.monotonic() + 30
    while GEMMA in [m.model for m in client.ps().models]:
        assert time.monotonic() < deadline, "keep_alive 0 did not unload the model"
        time.sleep(0.2)
    assert client.generate(model=GEMMA, prompt="", keep_alive=-1).done_reason == "load"
    assert GEMMA in [m.model for m in client.ps().models]


@pytest.mark.parametrize(("call", "status", "text"), [
    (lambda c: c.chat(model="nope", messages=HELLO), 404, "not configured"),
    (lambda c: c.chat(model=QWEN, messages=HELLO, options={"temperature": 5}), 400, "options.temperature"),
    (lambda c: c.chat(model=QWEN, messages=[{"role": "user", "content": "x", "images": ["aGk="]}]), 400, "images"),
    (lambda c: c.generate(model=QWEN, prompt="x", keep_alive="soon"), 400, "keep_alive"),
    (lambda c: c.embed(model=QWEN, input="x"), 400, "not served for embeddings"),
    (lambda c: c.chat(model=MINILM, messages=HELLO), 400, "serves embeddings"),
    (lambda c: c.pull("llama3"), 501, "not pulled"),
    (lambda c: c.delete("llama3"), 501, "configured"),
])
def test_errors_come_in_ollamas_shape(client, call, status, text) -> None:
    with pytest.raises(ollama.ResponseError) as info:
        call(client)
    assert info.value.status_code == status and text in info.value.error, info.value.error
