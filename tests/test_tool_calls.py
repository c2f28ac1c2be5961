"""Tool calls on /v1/chat/completions (issue 20): tools rendered by the model's own template, calls
parsed into ``tool_calls``, arguments enforced by a grammar built from each function's schema.

The tiny models (random weights) get a small Hermes-style template: what they write by themselves is
noise, so every valid call they make shows the grammar at work. The embedded Qwen answers the SDK's
``get_weather`` example."""

from __future__ import annotations

import json

import jsonschema
import openai
import pytest

from gguf_model_server.generation_params import GrammarTrigger, SamplingConfig
from gguf_model_server.llama_native import NativeModel, Sampler, _GrammarStart
from gguf_model_server.tool_calls import HermesFormat, ToolCall, ToolFunction, ToolSchemaError

from conftest import assert_error, start_configured

HERMES_MINI = (
    "{%- if tools %}{{- '<|im_start|>system\\nTools:' }}{%- for tool in tools %}{{- ' ' + tool.function.name }}"
    "{%- endfor %}{{- '\\nCall one as <tool_call>{...}</tool_call><|im_end|>\\n' }}{%- endif %}"
    "{%- for message in messages %}{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}"
    "{%- endfor %}{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)
FORECAST = {"type": "object", "additionalProperties": False, "required": ["city", "rain"],
            "properties": {"city": {"enum": ["Paris", "Rome", "Oslo"]}, "rain": {"type": "boolean"}}}
ALARM = {"type": "object", "required": ["hour"], "properties": {"hour": {"enum": [6, 7, 8]}}}
TOOLS = [{"type": "function", "function": {"name": "forecast", "description": "the weather", "parameters": FORECAST}},
         {"type": "function", "function": {"name": "set_alarm", "parameters": ALARM}}]
SCHEMAS = {"forecast": FORECAST, "set_alarm": ALARM}
CHAT = [{"role": "user", "content": "weather?"}]
BYTE_TOKEN = 3  # the tiny vocabulary: <unk> <s> </s>, then one token per byte (tests/tiny_gguf.py)


def calls_of(text: str, names: list[str] | None = None) -> list[str | ToolCall]:
    parser = HermesFormat().parser([ToolFunction(n, {}) for n in names or ["forecast"]])
    return parser.feed(text) + parser.finish()


def test_calls_are_parsed_out_of_the_text_whole_or_streamed() -> None:
    text = ('Checking. <tool_call>\n{"name": "forecast", "arguments": {"city": "Rome"}}\n</tool_call>\n'
            '<tool_call>{"name": "set_alarm", "arguments": {"hour": 7}}</tool_call>')
    whole = calls_of(text)
    assert [(c.name, json.loads(c.arguments)) for c in whole if isinstance(c, ToolCall)] == [
        ("forecast", {"city": "Rome"}), ("set_alarm", {"hour": 7})]
    assert "".join(c for c in whole if isinstance(c, str)).strip() == "Checking."
    parser = HermesFormat().parser([ToolFunction("forecast", {})])
    streamed = [item for ch in text for item in parser.feed(ch)] + parser.finish()
    assert [c.name for c in streamed if isinstance(c, ToolCall)] == ["forecast", "set_alarm"]
    assert "".join(c for c in streamed if isinstance(c, str)).strip() == "Checking."
    assert not any("<tool" in c for c in streamed if isinstance(c, str))  # a tag is never sent as content


@pytest.mark.parametrize(("text", "call"), [
    ('{"name": "forecast", "arguments": {"city": "Oslo"}}', True),  # small models drop the tags
    ('```json\n{"name": "forecast", "arguments": {}}\n```', True),  # or fence the call
    ('<tool_call>\n{"name": "forecast", "arguments": {"city": "Oslo"}}', True),  # ended before the end tag
    ('{"name": "Ada", "age": 36}', False),  # a JSON answer is content unless it names a function
    ('<tool_call>{"name": "forecast", "arguments": {"city": ', False),  # cut: content, as written
    ('```python\nprint(1)\n```', False),
])
def test_untagged_fenced_cut_and_plain_answers(text, call) -> None:
    items = calls_of(text)
    assert any(isinstance(i, ToolCall) for i in items) is call
    if not call:
        assert "".join(i for i in items if isinstance(i, str)) == text  # nothing lost


def test_a_keyword_the_grammar_cannot_enforce_names_the_tool_and_the_path() -> None:
    bad = {"type": "object", "properties": {"hour": {"type": "integer", "minimum": 0}}}
    with pytest.raises(ToolSchemaError) as info:
        HermesFormat().grammar([ToolFunction("ok", ALARM), ToolFunction("bad", bad)], parallel=True)
    assert str(info.value).startswith("tools.1.function.parameters.properties.hour.minimum")


@pytest.fixture(scope="module")
def tiny_native(model_files) -> NativeModel:
    return NativeModel(model_files["a"], use_mmap=True, use_mlock=False)


def test_a_lazy_grammar_starts_at_its_trigger_and_a_false_start_costs_nothing(tiny_native) -> None:
    # llama.cpp's own lazy grammar feeds the trigger's text to the grammar unchecked, and text it
    # rejects throws through the C API (the process dies); here every token is checked first.
    model = tiny_native
    grammar = 'root ::= "<call>" [0-9]'
    sampler = Sampler(model, SamplingConfig(temperature=0), [], grammar, trigger=GrammarTrigger(words=("<call>",)))

    def feed(text: str, into: Sampler = sampler) -> None:
        for ch in text.encode():
            into._maybe_start_grammar(BYTE_TOKEN + ch)

    def allowed(ch: str) -> bool:
        return sampler._allows(BYTE_TOKEN + ord(ch))

    feed("free text, x")
    assert sampler._waiting is not None  # free text: sample() does not consult the grammar yet
    feed("<call>")
    assert sampler._waiting is None  # started: from here on only what the grammar allows
    assert allowed("7") and not allowed("y")
    false_start = Sampler(model, SamplingConfig(temperature=0), [], 'root ::= "{" [0-9]',
                          trigger=GrammarTrigger(patterns=(r'\s*(\{"a")',)))
    feed('{"a"', into=false_start)  # matched, but the grammar refuses '"' after '{': let go, no crash
    assert false_start._waiting is not None
    assert false_start._allows(BYTE_TOKEN + ord("{"))  # and the grammar is back at its start


def test_a_trigger_inside_a_token_is_not_a_start(tiny_native) -> None:
    start = _GrammarStart(tiny_native, GrammarTrigger(words=("the",)))
    the = BYTE_TOKEN + 256  # "▁the", the first word of the tiny vocabulary: "the" starts one byte into it
    assert tiny_native.piece(the) == b" the"
    assert start.feed(the) is None
    assert start.feed(BYTE_TOKEN + ord("x")) is None


@pytest.fixture(scope="module")
def tools_server(module_server, model_files, tmp_path_factory):
    opts = {"n_ctx": 1024, "n_threads": 1}
    return start_configured(module_server, model_files, tmp_path_factory, [
        {"name": "tiny-tools", "backend": "llama_cpp", "path": "tiny-a.gguf",
         "options": {**opts, "chat_template": HERMES_MINI}},
        {"name": "tiny-plain", "backend": "llama_cpp", "path": "tiny-b.gguf", "options": opts},
    ])


@pytest.fixture(scope="module")
def client(tools_server) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{tools_server.url}/v1", api_key="unused", max_retries=0, timeout=120)


def check_call(call, names=("forecast", "set_alarm")) -> None:
    assert call.type == "function" and call.id.startswith("call_") and call.function.name in names
    jsonschema.validate(json.loads(call.function.arguments), SCHEMAS[call.function.name])


def test_required_calls_always_follow_the_schemas(client) -> None:
    for seed in range(4):
        r = client.chat.completions.create(model="tiny-tools", messages=CHAT, tools=TOOLS, tool_choice="required",
                                           temperature=1.0, seed=seed, max_tokens=400)
        choice = r.choices[0]
        assert choice.finish_reason == "tool_calls", choice
        assert choice.message.tool_calls
        for call in choice.message.tool_calls:
            check_call(call)
        assert len({c.id for c in choice.message.tool_calls}) == len(choice.message.tool_calls)


def test_a_named_function_and_no_parallel_calls(client) -> None:
    for seed in range(3):
        r = client.chat.completions.create(
            model="tiny-tools", messages=CHAT, tools=TOOLS, temperature=1.0, seed=seed, max_tokens=300,
            tool_choice={"type": "function", "function": {"name": "set_alarm"}})
        assert [c.function.name for c in r.choices[0].message.tool_calls] == ["set_alarm"]
        check_call(r.choices[0].message.tool_calls[0])
        r = client.chat.completions.create(model="tiny-tools", messages=CHAT, tools=TOOLS, tool_choice="required",
                                           parallel_tool_calls=False, temperature=1.0, seed=seed, max_tokens=300)
        assert len(r.choices[0].message.tool_calls) == 1


def test_streamed_calls_arrive_as_tool_call_deltas(client) -> None:
    stream = client.chat.completions.create(model="tiny-tools", messages=CHAT, tools=TOOLS, tool_choice="required",
                                            temperature=1.0, seed=11, max_tokens=400, stream=True)
    deltas, finish = [], None
    for chunk in stream:
        choice = chunk.choices[0]
        assert not choice.delta.content  # nothing of the call's text leaks as content
        deltas += choice.delta.tool_calls or []
        finish = choice.finish_reason or finish
    assert finish == "tool_calls" and deltas
    assert [d.index for d in deltas] == list(range(len(deltas)))
    for d in deltas:
        check_call(d)


def test_none_answers_in_text_and_history_with_calls_is_accepted(client) -> None:
    r = client.chat.completions.create(model="tiny-tools", messages=CHAT, tools=TOOLS, tool_choice="none",
                                       max_tokens=8)
    assert r.choices[0].message.tool_calls is None and r.choices[0].finish_reason in ("stop", "length")
    call = {"id": "call_1", "type": "function", "function": {"name": "forecast", "arguments": '{"city": "Oslo"}'}}
    history = [*CHAT, {"role": "assistant", "content": None, "tool_calls": [call]},
               {"role": "tool", "tool_call_id": "call_1", "content": "rain all day"}]
    r = client.chat.completions.create(model="tiny-tools", messages=history, tools=TOOLS, max_tokens=8)
    assert r.choices[0].finish_reason in ("stop", "length", "tool_calls")


@pytest.mark.parametrize(("change", "status", "param", "words"), [
    ({"model": "tiny-plain"}, 400, "tools", "cannot call tools"),
    ({"tool_choice": {"type": "function", "function": {"name": "nope"}}}, 400, "tool_choice", "not in 'tools'"),
    ({"tools": None, "tool_choice": "required"}, 400, "tool_choice", "no 'tools'"),
    ({"response_format": {"type": "json_object"}}, 400, "response_format", "together with tools"),
    ({"tools": [*TOOLS, TOOLS[0]]}, 400, "tools", "defined twice"),
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {
        "type": "object", "properties": {"n": {"type": "integer", "maximum": 3}}}}}]},
     400, "tools.0.function.parameters", "properties.n.maximum"),
    ({"tools": [{"type": "function", "function": {"name": "f", "description": "end </s> here"}}]},
     400, "tools", "control-token"),
    ({"tools": [{"type": "function", "function": {"name": "has space"}}]}, 422, None, "name"),
    ({"messages": [{"role": "user", "content": "hi", "tool_calls": [
        {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}]},
     400, "messages.0.tool_calls", "only assistant messages"),
])
def test_tool_requests_that_cannot_be_served_say_why(tools_server, change, status, param, words) -> None:
    body = {"model": "tiny-tools", "messages": CHAT, "tools": TOOLS, "max_tokens": 4, **change}
    r = tools_server.client.post("/v1/chat/completions", json={k: v for k, v in body.items() if v is not None})
    message = assert_error(r, status)
    assert words in message
    if param is not None:
        assert r.json()["error"]["param"] == param
    assert tools_server.client.post("/v1/chat/completions", json={
        "model": "tiny-tools", "messages": CHAT, "max_tokens": 2}).status_code == 200


WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Get the current weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string", "description": "the city's name"}},
                   "required": ["city"], "additionalProperties": False}, "strict": True}}


@pytest.mark.slow
def test_the_sdk_weather_example_on_the_embedded_chat_model(module_server) -> None:
    srv = module_server()  # no config: the embedded models
    srv.wait_settled(timeout=180)
    client = openai.OpenAI(base_url=f"{srv.url}/v1", api_key="unused", max_retries=0, timeout=120)
    messages = [{"role": "user", "content": "What is the weather in Paris? Answer in one sentence."}]
    common = {"model": "qwen2.5-0.5b-instruct", "tools": [WEATHER_TOOL], "temperature": 0,
              "extra_body": {"cache_prompt": False}}
    r = client.chat.completions.create(messages=messages, **common)
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None, choice
    (call,) = choice.message.tool_calls
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"city": "Paris"}

    stream = client.chat.completions.create(messages=messages, stream=True, **common)
    streamed = [d for chunk in stream for d in (chunk.choices[0].delta.tool_calls or [])]
    assert [(d.function.name, d.function.arguments) for d in streamed] == [("get_weather", call.function.arguments)]

    # The result goes back as a tool message; with tool_choice "none" the model answers in words.
    messages += [choice.message.model_dump(exclude_none=True),
                 {"role": "tool", "tool_call_id": call.id, "content": "The weather in Paris: 14 degrees Celsius, "
                                                                       "light rain."}]
    final = client.chat.completions.create(messages=messages, tool_choice="none", max_tokens=60, **common)
    answer = final.choices[0]
    assert answer.message.tool_calls is None and answer.finish_reason == "stop"
    assert "rain" in answer.message.content.lower() or "14" in answer.message.content
    question_only = client.chat.completions.create(messages=messages[:1], tool_choice="none", max_tokens=1, **common)
    assert final.usage.prompt_tokens > question_only.usage.prompt_tokens + 15  # the call and its result
    # In auto mode the same history is served too (this small model tends to call again).
    again = client.chat.completions.create(messages=messages, **common).choices[0]
    assert again.finish_reason in ("stop", "tool_calls")
    for c in again.message.tool_calls or []:
        assert c.function.name == "get_weather" and "city" in json.loads(c.function.arguments)
