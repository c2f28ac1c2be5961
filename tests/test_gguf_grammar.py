"""A GBNF grammar on /generate (issue 20): every token follows it, or the request is refused before
it starts. The tiny test models have random weights: what they write by themselves never matches
the grammar, so a text that does shows the grammar at work."""

from __future__ import annotations

import json
import re
from concurrent.futures import ThreadPoolExecutor

from conftest import assert_error

YES_NO = 'root ::= ("yes" | "no") " " [0-9] [0-9]? "."'
PATTERN = re.compile(r"(yes|no) [0-9][0-9]?\.")


def test_every_answer_follows_the_grammar_greedy_and_sampled(tiny_server) -> None:
    for i, body in enumerate([{"temperature": 0}, {"temperature": 1.0, "seed": 7}, {"temperature": 1.5, "top_k": 0},
                              {"temperature": 0.8, "repeat_penalty": 1.3, "seed": 3}]):
        r = tiny_server.client.post("/generate", json={"model": "tiny-a", "prompt": f"question {i}", "max_tokens": 32,
                                                       "grammar": YES_NO, **body})
        assert r.status_code == 200, r.text
        answer = r.json()
        assert PATTERN.fullmatch(answer["text"]), answer
        assert answer["finish_reason"] == "stop"  # the grammar ended it, not max_tokens


def test_a_grammar_does_not_touch_the_request_beside_it(tiny_server) -> None:
    plain = {"model": "tiny-a", "prompt": "the", "max_tokens": 16, "temperature": 0, "cache_prompt": False}
    alone = tiny_server.client.post("/generate", json=plain).json()["text"]
    with ThreadPoolExecutor(2) as pool:
        constrained = pool.submit(tiny_server.client.post, "/generate",
                                  json={**plain, "prompt": "a", "grammar": YES_NO})
        beside = pool.submit(tiny_server.client.post, "/generate", json=plain)
        assert PATTERN.fullmatch(constrained.result().json()["text"])
        assert beside.result().json()["text"] == alone  # cache_prompt false: its decodes hold only its tokens


def test_a_grammar_that_does_not_parse_is_refused_and_the_server_goes_on(tiny_server) -> None:
    r = tiny_server.client.post("/generate", json={"model": "tiny-a", "prompt": "x", "grammar": 'root ::= ( "a"'})
    message = assert_error(r, 400)
    assert "grammar" in message and "GBNF" in message and r.json()["error"]["param"] == "grammar"
    r = tiny_server.client.post("/generate", json={"model": "tiny-a", "prompt": "x", "grammar": 'start ::= "a"'})
    assert_error(r, 400)  # no root rule
    ok = tiny_server.client.post("/generate", json={"model": "tiny-a", "prompt": "x", "max_tokens": 4})
    assert ok.status_code == 200


def test_a_json_schema_on_generate_is_enforced_or_refused_naming_the_keyword(tiny_server) -> None:
    schema = {"type": "object", "required": ["ok"], "additionalProperties": False,
              "properties": {"ok": {"type": "boolean"}}}
    for seed in range(3):
        r = tiny_server.client.post("/generate", json={"model": "tiny-a", "prompt": "x", "max_tokens": 40,
                                                       "temperature": 1.0, "seed": seed, "json_schema": schema})
        assert r.status_code == 200, r.text
        answer = r.json()
        assert answer["finish_reason"] == "stop" and set(json.loads(answer["text"])) == {"ok"}
    both = tiny_server.client.post("/generate", json={"model": "tiny-a", "prompt": "x", "json_schema": schema,
                                                      "grammar": YES_NO})
    assert "not both" in assert_error(both, 400) and both.json()["error"]["param"] == "json_schema"
    bad = tiny_server.client.post("/generate", json={"model": "tiny-a", "prompt": "x",
                                                     "json_schema": {"type": "integer", "minimum": 1}})
    assert "json_schema.minimum" in assert_error(bad, 400) and bad.json()["error"]["param"] == "json_schema"
