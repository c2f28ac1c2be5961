"""The translating API families' pure parts (issue 21): how Responses input items, Anthropic
content blocks and Ollama messages become a chat, durations and error shapes."""

from __future__ import annotations

import pytest

from gguf_model_server.api.anthropic_messages.protocol import MessagesRequest
from gguf_model_server.api.anthropic_messages.serving import anthropic_error
from gguf_model_server.api.anthropic_messages.serving import to_chat as messages_to_chat
from gguf_model_server.api.ollama.serving import keep_alive_seconds, ollama_error
from gguf_model_server.api.responses.protocol import ResponsesRequest
from gguf_model_server.api.responses.serving import to_chat as responses_to_chat
from serving_core.errors import BadRequest


def test_responses_items_become_one_chat_calls_grouped_results_as_tool_messages() -> None:
    req = ResponsesRequest.model_validate({"model": "m", "instructions": "be brief", "input": [
        {"role": "user", "content": [{"type": "input_text", "text": "weather "}, {"type": "input_text", "text": "?"}]},
        {"type": "function_call", "call_id": "c1", "name": "get", "arguments": '{"city": "Rome"}'},
        {"type": "function_call", "call_id": "c2", "name": "get", "arguments": '{"city": "Oslo"}'},
        {"type": "function_call_output", "call_id": "c1", "output": "sun"},
        {"type": "function_call_output", "call_id": "c2", "output": "snow"},
        {"type": "reasoning", "id": "r1"},
        {"role": "assistant", "content": [{"type": "output_text", "text": "Rome: sun."}]}],
        "max_output_tokens": 9, "text": {"format": {"type": "json_object"}}})
    chat = responses_to_chat(req)
    roles = [m.role for m in chat.messages]
    assert roles == ["system", "user", "assistant", "tool", "tool", "assistant"]
    assert chat.messages[1].content == "weather ?"
    assert [c.id for c in chat.messages[2].tool_calls] == ["c1", "c2"]  # one assistant turn, both calls
    assert [m.tool_call_id for m in chat.messages[3:5]] == ["c1", "c2"]
    assert chat.max_tokens == 9 and chat.response_format.type == "json_object"


@pytest.mark.parametrize(("body", "text"), [
    ({"previous_response_id": "resp_1"}, "stateless"),
    ({"conversation": "conv_1"}, "conversation"),
    ({"background": True}, "background"),
    ({"top_logprobs": 3}, "not supported: top_logprobs on /v1/responses"),
    ({"tools": [{"type": "file_search"}]}, "hosted tool 'file_search'"),
    ({"input": [{"type": "function_call", "name": "f"}]}, "needs 'call_id'"),
    ({"input": [{"content": "x"}]}, "needs a 'type'"),
    ({"max_output_tokens": 40000}, None),  # pydantic: a 422 at the route, not a 400 here
])
def test_responses_refusals_name_what_to_change(body, text) -> None:
    data = {"model": "m", "input": "hi", **body}
    if text is None:
        with pytest.raises(ValueError, match="max_output_tokens"):
            ResponsesRequest.model_validate(data)
        return
    with pytest.raises(BadRequest, match=text):
        responses_to_chat(ResponsesRequest.model_validate(data))


def test_anthropic_blocks_become_calls_and_tool_messages_before_the_users_text() -> None:
    req = MessagesRequest.model_validate({"model": "m", "max_tokens": 5, "system": [{"type": "text", "text": "sys"}],
                                          "stop_sequences": ["END"], "top_k": 5, "messages": [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": [{"type": "text", "text": "Checking."},
                                          {"type": "tool_use", "id": "t1", "name": "get", "input": {"city": "Rome"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": [
            {"type": "text", "text": "sun"}]}, {"type": "text", "text": "and tomorrow?"}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t2", "content": "boom",
                                      "is_error": True}]}],
        "tools": [{"name": "get", "input_schema": {"type": "object"}}],
        "tool_choice": {"type": "tool", "name": "get", "disable_parallel_tool_use": True}})
    chat = messages_to_chat(req)
    assert [m.role for m in chat.messages] == ["system", "user", "assistant", "tool", "user", "tool"]
    assert chat.messages[2].content == "Checking." and chat.messages[2].tool_calls[0].function.arguments == \
        '{"city": "Rome"}'
    assert chat.messages[3].content == "sun" and chat.messages[4].content == "and tomorrow?"
    assert chat.messages[5].content == "Error: boom"
    assert chat.stop == ["END"] and chat.top_k == 5 and not chat.parallel_tool_calls
    assert chat.tool_choice.function.name == "get"


def test_error_dialects() -> None:
    body = {"error": {"code": "validation_error", "type": "invalid_request_error", "message": "x: bad"}}
    assert anthropic_error(422, body) == (400, {"type": "error", "error": {"type": "invalid_request_error",
                                                                           "message": "x: bad"}})
    assert anthropic_error(404, body)[1]["error"]["type"] == "not_found_error"
    assert anthropic_error(503, body)[1]["error"]["type"] == "overloaded_error"
    assert anthropic_error(500, body)[1]["error"]["type"] == "api_error"
    assert ollama_error(422, body) == (400, {"error": "x: bad"})
    assert ollama_error(429, body) == (429, {"error": "x: bad"})


@pytest.mark.parametrize(("value", "seconds"), [
    (None, None), (300, 300.0), ("300", 300.0), ("5m", 300.0), ("1h30m", 5400.0), ("1.5s", 1.5), ("250ms", 0.25),
    ("-1", -1.0), ("-1m", -60.0), (0, 0.0), ("0", 0.0),
])
def test_keep_alive_durations_as_ollama_writes_them(value, seconds) -> None:
    assert keep_alive_seconds(value) == seconds


@pytest.mark.parametrize("value", ["soon", "5 m", "m5", "1d", ""])
def test_a_keep_alive_that_is_no_duration_is_a_400(value) -> None:
    with pytest.raises(BadRequest, match="keep_alive"):
        keep_alive_seconds(value)
