"""OpenAI's Responses API (issue 21) through the official ``openai`` SDK: ``responses.create``,
``responses.parse`` and ``responses.stream`` on the embedded chat model, and what it refuses."""

from __future__ import annotations

import json

import openai
import pytest
from pydantic import BaseModel

from conftest import assert_error

pytestmark = pytest.mark.slow
QWEN = "qwen2.5-0.5b-instruct"
WEATHER = {"type": "function", "name": "get_weather", "description": "Get the current weather in a city.",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
                          "additionalProperties": False}, "strict": True}
ASK = "What is the weather in Paris?"


@pytest.fixture(scope="module")
def client(embedded_server) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{embedded_server.url}/v1", api_key="unused", max_retries=0, timeout=120)


def test_text_in_text_out_with_usage_and_a_cut_answer_marked_incomplete(client) -> None:
    r = client.responses.create(model=QWEN, input="Say hello in French.", instructions="Answer in one line.",
                                temperature=0)
    assert r.object == "response" and r.status == "completed" and r.model == QWEN
    assert r.output[0].type == "message" and r.output[0].role == "assistant"
    assert "bonjour" in r.output_text.lower()
    assert r.usage.input_tokens > 10 and r.usage.output_tokens >= 1
    assert r.usage.total_tokens == r.usage.input_tokens + r.usage.output_tokens
    cut = client.responses.create(model=QWEN, input="Count from one to fifty in words.", max_output_tokens=3,
                                  temperature=0)
    assert cut.status == "incomplete" and cut.incomplete_details.reason == "max_output_tokens"
    assert cut.usage.output_tokens == 3 and cut.output_text


def test_the_stream_is_the_event_sequence_the_sdk_helper_reads(client) -> None:
    with client.responses.stream(model=QWEN, input="Say hello in French.", temperature=0) as stream:
        events = list(stream)
        final = stream.get_final_response()
    types = [e.type for e in events]
    assert types[:4] == ["response.created", "response.in_progress", "response.output_item.added",
                         "response.content_part.added"]
    assert types[-4:] == ["response.output_text.done", "response.content_part.done", "response.output_item.done",
                          "response.completed"]
    assert set(types[4:-4]) == {"response.output_text.delta"}
    assert [e.sequence_number for e in events] == list(range(len(events)))
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert deltas == final.output_text == events[-4].text and "bonjour" in deltas.lower()
    assert final.status == "completed" and final.usage.output_tokens >= len(types[4:-4])
    assert events[0].response.id == final.id


def test_a_function_tool_round_trip(client) -> None:
    r = client.responses.create(model=QWEN, input=ASK, tools=[WEATHER], temperature=0)
    (call,) = r.output
    assert call.type == "function_call" and call.name == "get_weather" and json.loads(call.arguments) == {
        "city": "Paris"}
    with client.responses.stream(model=QWEN, input=ASK, tools=[WEATHER], temperature=0) as stream:
        types = [e.type for e in stream]
        streamed = stream.get_final_response().output
    assert "response.function_call_arguments.delta" in types and "response.function_call_arguments.done" in types
    assert [(o.type, o.name, o.arguments) for o in streamed] == [("function_call", "get_weather", call.arguments)]
    # The call and its result go back as input items; with tool_choice "none" the model answers in words.
    history = [{"role": "user", "content": ASK}, call.model_dump(exclude_none=True),
               {"type": "function_call_output", "call_id": call.call_id, "output": "14 degrees Celsius, light rain"}]
    final = client.responses.create(model=QWEN, input=history, tools=[WEATHER], tool_choice="none",
                                    max_output_tokens=60, temperature=0)
    assert final.status == "completed" and final.output[0].type == "message"
    assert "rain" in final.output_text.lower() or "14" in final.output_text
    question = client.responses.create(model=QWEN, input=ASK, tools=[WEATHER], tool_choice="none",
                                       max_output_tokens=1, temperature=0)
    assert final.usage.input_tokens > question.usage.input_tokens + 15  # the call and its result are in the prompt


def test_text_format_json_schema_parses_into_the_model(client) -> None:
    class City(BaseModel):
        name: str
        country: str

    for question in ("Name a large city in Japan.", "Name the capital of Italy.", "Name a city in Brazil."):
        parsed = client.responses.parse(model=QWEN, input=question, text_format=City, temperature=0)
        assert isinstance(parsed.output_parsed, City) and parsed.output_parsed.name


@pytest.mark.parametrize(("kwargs", "error", "text"), [
    ({"model": "nope", "input": "x"}, openai.NotFoundError, "not configured"),
    ({"model": QWEN, "input": "x", "previous_response_id": "resp_1"}, openai.BadRequestError, "stateless"),
    ({"model": QWEN, "input": "x", "tools": [{"type": "web_search"}]}, openai.BadRequestError, "hosted tool"),
    ({"model": QWEN, "input": [{"role": "user", "content": [{"type": "input_image", "image_url": "data:,"}]}]},
     openai.BadRequestError, "image input"),
    ({"model": QWEN, "input": "x", "temperature": 3}, openai.UnprocessableEntityError, "temperature"),
    ({"model": QWEN, "input": "x", "text": {"format": {"type": "json_schema", "name": "n", "schema": {
        "type": "integer", "minimum": 3}}}}, openai.BadRequestError, "minimum"),
])
def test_what_cannot_be_served_is_refused_in_openais_shape(client, kwargs, error, text) -> None:
    with pytest.raises(error, match=text):
        client.responses.create(**kwargs)


def test_an_unknown_input_item_is_named(embedded_server) -> None:
    r = embedded_server.client.post("/v1/responses", json={"model": QWEN, "input": [{"type": "item_reference",
                                                                                     "id": "msg_1"}]})
    assert "item_reference" in assert_error(r, 400)
