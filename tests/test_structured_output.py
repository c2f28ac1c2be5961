"""Structured output (issue 20): ``response_format`` is enforced by a grammar, or refused naming the
keyword that could not be enforced — never accepted and ignored."""

from __future__ import annotations

import json
from typing import Literal

import openai
import pytest
from pydantic import BaseModel, ConfigDict, Field

from gguf_model_server.structured_output import SchemaNotEnforceable, check_enforceable, json_schema_grammar

ANSWER_SCHEMA = {"type": "object", "additionalProperties": False, "required": ["answer", "count"],
                 "properties": {"answer": {"enum": ["yes", "no"]}, "count": {"type": "integer"},
                                "tags": {"type": "array", "items": {"type": "string", "maxLength": 8},
                                         "maxItems": 2}}}


@pytest.mark.parametrize(("schema", "where"), [
    ({"type": "integer", "minimum": 3}, "minimum"),
    ({"type": "object", "properties": {"age": {"type": "number", "multipleOf": 2}}}, "properties.age.multipleOf"),
    ({"type": "array", "items": {"not": {"type": "string"}}}, "items.not"),
    ({"type": "string", "format": "email"}, "format"),
    ({"$ref": "https://example.com/schema.json"}, "$ref"),
    ({"anyOf": [{"type": "string"}, {"type": "integer", "exclusiveMaximum": 9}]}, "anyOf.1.exclusiveMaximum"),
    ({"type": "array", "maxItems": 10_000_000}, "maxItems"),  # bounded: the grammar writes repetitions out
    ({"type": "string", "pattern": "(unclosed"}, "schema"),  # the converter's own refusal
])
def test_a_keyword_the_grammar_cannot_enforce_is_named(schema, where) -> None:
    with pytest.raises(SchemaNotEnforceable) as info:
        json_schema_grammar(schema)
    assert info.value.where == where


def test_what_the_grammar_enforces_and_annotations_pass() -> None:
    check_enforceable({**ANSWER_SCHEMA, "title": "Answer", "description": "an answer", "$schema": "x"})
    assert "root ::=" in json_schema_grammar(ANSWER_SCHEMA)


@pytest.fixture(scope="module")
def tiny_client(tiny_server):
    return openai.OpenAI(base_url=f"{tiny_server.url}/v1", api_key="unused", max_retries=0, timeout=60)


def test_random_weights_still_answer_json_the_schema_accepts(tiny_client) -> None:
    # The tiny models write noise; a document that validates can only come from the grammar.
    for seed in range(4):
        r = tiny_client.chat.completions.create(
            model="tiny-a", messages=[{"role": "user", "content": f"question {seed}"}], max_tokens=150,
            temperature=1.0, seed=seed,
            response_format={"type": "json_schema", "json_schema": {"name": "answer", "schema": ANSWER_SCHEMA}})
        choice = r.choices[0]
        assert choice.finish_reason == "stop", choice
        doc = json.loads(choice.message.content)
        assert doc["answer"] in ("yes", "no") and isinstance(doc["count"], int)
        assert set(doc) <= {"answer", "count", "tags"} and len(doc.get("tags", [])) <= 2


def test_json_object_mode_and_refusals_through_the_sdk(tiny_client) -> None:
    r = tiny_client.completions.create(model="tiny-b", prompt="x", max_tokens=200, temperature=0,
                                       extra_body={"response_format": {"type": "json_object"}})
    if r.choices[0].finish_reason == "stop":  # an object the random model closes within 200 tokens
        assert isinstance(json.loads(r.choices[0].text), dict)
    else:  # "length" is the only way to get unparseable JSON, and it says so
        assert r.choices[0].finish_reason == "length" and r.choices[0].text.lstrip().startswith("{")
    with pytest.raises(openai.BadRequestError) as info:
        tiny_client.chat.completions.create(
            model="tiny-a", messages=[{"role": "user", "content": "hi"}], max_tokens=4,
            response_format={"type": "json_schema",
                             "json_schema": {"name": "n", "schema": {"type": "integer", "minimum": 3}}})
    assert "minimum" in str(info.value) and "not supported" in str(info.value)


class City(BaseModel):
    model_config = ConfigDict(extra="forbid")  # additionalProperties: false, as the SDK's strict mode sends
    name: str = Field(max_length=40)
    country: str = Field(max_length=40)


class Trip(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cities: list[City] = Field(max_length=3)
    transport: Literal["train", "car", "plane"]  # an enum
    nights: int
    budget: Budget | None = None  # a nested object, optional


class Budget(BaseModel):
    model_config = ConfigDict(extra="forbid")
    currency: Literal["EUR", "USD", "JPY"]
    amount: int


Trip.model_rebuild()
PLACES = ("Italy", "Japan", "Spain", "Peru", "Canada", "Norway", "Kenya", "Chile", "Vietnam", "Morocco",
          "Iceland", "Greece", "Mexico", "Portugal", "Thailand", "Egypt", "Ireland", "Argentina", "Croatia", "Nepal")


@pytest.mark.slow
def test_the_sdk_parse_helper_gets_valid_instances_from_the_embedded_chat_model(module_server) -> None:
    srv = module_server()  # no config: the embedded models
    srv.wait_settled(timeout=180)
    client = openai.OpenAI(base_url=f"{srv.url}/v1", api_key="unused", max_retries=0, timeout=120)
    for place in PLACES:  # 20 prompts, 20 instances that validate
        completion = client.chat.completions.parse(
            model="qwen2.5-0.5b-instruct", temperature=0.7, seed=1, max_tokens=300,
            messages=[{"role": "user", "content": f"Plan a short trip through {place}."}], response_format=Trip)
        message = completion.choices[0].message
        assert completion.choices[0].finish_reason == "stop"
        assert isinstance(message.parsed, Trip), message.content
        assert message.parsed.transport in ("train", "car", "plane") and len(message.parsed.cities) <= 3
