"""Anthropic's Messages API (issue 21) through the official ``anthropic`` SDK: ``messages.create``,
``messages.stream``, a tool-use round trip and ``count_tokens`` on the embedded chat model; errors
in Anthropic's shape. (This SDK's ``create`` no longer takes sampling arguments: they go in
``extra_body``, as older SDKs and other clients send them.)"""

from __future__ import annotations

import json

import anthropic
import ollama
import pytest

from conftest import start_configured

pytestmark = pytest.mark.slow
QWEN = "qwen2.5-0.5b-instruct"
GREEDY = {"extra_body": {"temperature": 0}}
WEATHER = {"name": "get_weather", "description": "Get the current weather in a city.",
           "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}
ASK = [{"role": "user", "content": "What is the weather in Paris?"}]
HELLO = [{"role": "user", "content": "Say hello in French."}]


@pytest.fixture(scope="module")
def client(embedded_server) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=embedded_server.url, api_key="unused", max_retries=0, timeout=120)


def test_a_message_with_its_usage_and_stop_reasons(client) -> None:
    m = client.messages.create(model=QWEN, max_tokens=40, messages=HELLO, system="Answer in one line.", **GREEDY)
    assert m.type == "message" and m.role == "assistant" and m.model == QWEN
    assert [b.type for b in m.content] == ["text"] and "bonjour" in m.content[0].text.lower()
    assert m.stop_reason == "end_turn" and m.stop_sequence is None
    assert m.usage.input_tokens > 10 and m.usage.output_tokens >= 1
    cut = client.messages.create(model=QWEN, max_tokens=2, messages=[{"role": "user", "content": "Count to 50."}],
                                 **GREEDY)
    assert cut.stop_reason == "max_tokens" and cut.usage.output_tokens == 2
    # A client's own stop sequence is named; the text ends before it.
    stopped = client.messages.create(model=QWEN, max_tokens=40, messages=HELLO, stop_sequences=["jour"], **GREEDY)
    assert stopped.stop_reason == "stop_sequence" and stopped.stop_sequence == "jour"
    assert "jour" not in stopped.content[0].text.lower() and stopped.content[0].text.lower().endswith("bon")


def test_the_stream_reads_as_the_sdk_expects(client) -> None:
    with client.messages.stream(model=QWEN, max_tokens=40, messages=HELLO, **GREEDY) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert len(pieces) > 1 and "".join(pieces) == final.content[0].text and "bonjour" in final.content[0].text.lower()
    assert final.stop_reason == "end_turn" and final.usage.output_tokens >= len(pieces)
    with client.messages.stream(model=QWEN, max_tokens=40, messages=HELLO, **GREEDY) as stream:
        types = [e.type for e in stream]
    # The SDK adds its own "text" events beside each delta; Anthropic's own sequence is in order.
    wire = [t for t in types if t in ("message_start", "content_block_start", "content_block_delta",
                                      "content_block_stop", "message_delta", "message_stop")]
    assert wire[:2] == ["message_start", "content_block_start"]
    assert wire[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert set(wire[2:-3]) == {"content_block_delta"}


def test_a_tool_use_round_trip_and_count_tokens(client) -> None:
    m = client.messages.create(model=QWEN, max_tokens=100, tools=[WEATHER], messages=ASK, **GREEDY)
    assert m.stop_reason == "tool_use"
    (use,) = [b for b in m.content if b.type == "tool_use"]
    assert use.name == "get_weather" and use.input == {"city": "Paris"} and use.id
    with client.messages.stream(model=QWEN, max_tokens=100, tools=[WEATHER], messages=ASK, **GREEDY) as stream:
        streamed = stream.get_final_message()
    assert streamed.stop_reason == "tool_use"
    assert [(b.type, b.name, b.input) for b in streamed.content] == [("tool_use", "get_weather", {"city": "Paris"})]
    # count_tokens counts exactly the prompt messages.create evaluates (template, tools and all).
    counted = client.messages.count_tokens(model=QWEN, messages=ASK, tools=[WEATHER])
    assert counted.input_tokens == m.usage.input_tokens
    history = [*ASK, {"role": "assistant", "content": [use.model_dump(include={"type", "id", "name", "input"})]},
               {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id,
                                             "content": "14 degrees Celsius, light rain"}]}]
    final = client.messages.create(model=QWEN, max_tokens=60, tools=[WEATHER], tool_choice={"type": "none"},
                                   messages=history, **GREEDY)
    assert final.stop_reason == "end_turn" and final.content[0].type == "text"
    assert "rain" in final.content[0].text.lower() or "14" in final.content[0].text
    with_result = client.messages.count_tokens(model=QWEN, messages=history, tools=[WEATHER],
                                               tool_choice={"type": "none"})
    assert with_result.input_tokens == final.usage.input_tokens
    # tool_choice "any": a call, whatever the question.
    forced = client.messages.create(model=QWEN, max_tokens=60, tools=[WEATHER], tool_choice={"type": "any"},
                                    messages=HELLO, **GREEDY)
    assert forced.stop_reason == "tool_use" and forced.content[-1].type == "tool_use"


def test_output_config_format_is_enforced(client) -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}, "country": {"type": "string"}},
              "required": ["city", "country"], "additionalProperties": False}
    m = client.messages.create(model=QWEN, max_tokens=80, messages=[{"role": "user", "content": "A city in Peru?"}],
                               output_config={"format": {"type": "json_schema", "schema": schema}}, **GREEDY)
    doc = json.loads(m.content[0].text)
    assert set(doc) == {"city", "country"} and all(isinstance(v, str) for v in doc.values())


@pytest.mark.parametrize(("kwargs", "error", "status", "kind", "text"), [
    ({"model": "nope"}, anthropic.NotFoundError, 404, "not_found_error", "not configured"),
    ({"extra_body": {"temperature": 1.5}}, anthropic.BadRequestError, 400, "invalid_request_error", "temperature"),
    ({"messages": [{"role": "user", "content": [{"type": "image", "source": {"type": "base64", "media_type":
                                                 "image/png", "data": "iVBORw0KGgo="}}]}]},
     anthropic.BadRequestError, 400, "invalid_request_error", "image input"),
    ({"tools": [{"type": "web_search_20250305", "name": "web_search"}]}, anthropic.BadRequestError, 400,
     "invalid_request_error", "server tool"),
    ({"messages": [{"role": "assistant", "content": [{"type": "tool_result", "tool_use_id": "x"}]}]},
     anthropic.BadRequestError, 400, "invalid_request_error", "belongs in a user message"),
])
def test_errors_come_in_anthropics_shape(client, kwargs, error, status, kind, text) -> None:
    request = {"model": QWEN, "max_tokens": 5, "messages": HELLO, **kwargs}
    with pytest.raises(error) as info:
        client.messages.create(**request)
    assert info.value.status_code == status
    body = info.value.body
    assert body["type"] == "error" and body["error"]["type"] == kind and text in body["error"]["message"], body


def test_max_tokens_is_required_as_in_anthropics_api(embedded_server) -> None:
    r = embedded_server.client.post("/v1/messages", json={"model": QWEN, "messages": HELLO})
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"
    assert "max_tokens" in r.json()["error"]["message"]


def test_the_sdks_x_api_key_header_is_the_servers_key(module_server, model_files, tmp_path_factory) -> None:
    srv = start_configured(module_server, model_files, tmp_path_factory, [
        {"name": "tiny-a", "backend": "llama_cpp", "path": "tiny-a.gguf", "options": {"n_ctx": 256, "n_threads": 1}},
    ], api_key="s3cret")
    request = {"model": "tiny-a", "max_tokens": 2, "messages": HELLO}
    good = anthropic.Anthropic(base_url=srv.url, api_key="s3cret", max_retries=0, timeout=60)
    assert good.messages.create(**request).usage.output_tokens >= 1
    assert good.messages.count_tokens(model="tiny-a", messages=HELLO).input_tokens > 3
    bad = anthropic.Anthropic(base_url=srv.url, api_key="wrong", max_retries=0, timeout=60)
    with pytest.raises(anthropic.AuthenticationError) as info:
        bad.messages.create(**request)
    # Refused before any route ran, and still in Anthropic's shape (the error dialect of the path).
    assert info.value.body == {"type": "error", "error": {"type": "authentication_error",
                                                          "message": "incorrect API key"}}
    # Ollama's routes: its shape too, which its client reads as a plain message.
    with pytest.raises(ollama.ResponseError) as refused:
        ollama.Client(host=srv.url, headers={"Authorization": "Bearer wrong"}).chat(model="tiny-a", messages=HELLO)
    assert refused.value.status_code == 401 and refused.value.error == "incorrect API key"
    assert srv.client.post("/v1/chat/completions", json={}).json()["error"]["code"] == "invalid_api_key"
