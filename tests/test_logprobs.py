"""logprobs (issue 20): each generated token's log-probability under the model's raw distribution,
with the most likely alternatives, on both OpenAI families, streamed and not — checked against the
logits of the same prompt evaluated here, and through the official SDK."""

from __future__ import annotations

import numpy as np
import openai
import pytest
from engine_harness import last_logits, load

from conftest import assert_error

PROMPT = "the capital of France is"
GREEDY = {"temperature": 0, "extra_body": {"cache_prompt": False}}


@pytest.fixture(scope="module")
def client(tiny_server) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{tiny_server.url}/v1", api_key="unused", max_retries=0, timeout=60)


def test_the_first_token_logprob_is_the_log_softmax_of_the_prompts_logits(client, model_files) -> None:
    r = client.completions.create(model="tiny-a", prompt=PROMPT, max_tokens=6, logprobs=3, **GREEDY)
    model = load("tiny-a-local", model_files["a"], n_ctx=256, parallel=1)
    try:
        logits = last_logits(model, model.tokenize_prompt(PROMPT)).astype(np.float64)
    finally:
        model.close()
    expected = logits - (logits.max() + np.log(np.exp(logits - logits.max()).sum()))
    lp = r.choices[0].logprobs
    first = int(np.argmax(expected))
    assert lp.token_logprobs[0] == pytest.approx(expected[first], abs=1e-3)
    ranked = sorted(lp.top_logprobs[0].values(), reverse=True)
    assert ranked == pytest.approx(sorted(expected, reverse=True)[:3], abs=1e-3)


def test_completion_logprobs_shape_and_the_top_1_rule(client) -> None:
    r = client.completions.create(model="tiny-b", prompt=PROMPT, max_tokens=12, logprobs=2, **GREEDY)
    lp = r.choices[0].logprobs
    n = r.usage.completion_tokens
    assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) == len(lp.text_offset) == n
    assert lp.text_offset == [sum(len(t) for t in lp.tokens[:i]) for i in range(n)]
    for token, logprob, top in zip(lp.tokens, lp.token_logprobs, lp.top_logprobs, strict=True):
        # A dict by text (OpenAI's legacy shape): byte tokens that each render as U+FFFD collapse into one.
        assert logprob <= 0 and 1 <= len(top) <= 2
        assert max(top.values()) == pytest.approx(logprob) and top[token] == pytest.approx(logprob)  # the top-1


def test_chat_logprobs_streamed_and_not_are_the_same(client) -> None:
    body = {"model": "tiny-a", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 10,
            "logprobs": True, "top_logprobs": 3, **GREEDY}
    whole = client.chat.completions.create(**body)
    content = whole.choices[0].logprobs.content
    assert len(content) == whole.usage.completion_tokens
    for entry in content:
        assert bytes(entry.bytes).decode("utf-8", "replace") == entry.token
        assert [a.logprob for a in entry.top_logprobs] == sorted((a.logprob for a in entry.top_logprobs),
                                                                 reverse=True)
        assert (entry.top_logprobs[0].token, entry.top_logprobs[0].logprob) == pytest.approx(
            (entry.token, entry.logprob))
    streamed = [e for chunk in client.chat.completions.create(stream=True, **body)
                for e in (chunk.choices[0].logprobs.content if chunk.choices and chunk.choices[0].logprobs else [])]
    assert [(e.token, round(e.logprob, 4)) for e in streamed] == [(e.token, round(e.logprob, 4)) for e in content]
    plain = client.chat.completions.create(**{**body, "logprobs": False, "top_logprobs": None})
    assert plain.choices[0].logprobs is None  # only when asked: it costs a pass over the vocabulary


def test_logprob_requests_out_of_bounds_say_why(tiny_server) -> None:
    chat = {"model": "tiny-a", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    r = tiny_server.client.post("/v1/chat/completions", json={**chat, "top_logprobs": 3})
    assert "needs logprobs: true" in assert_error(r, 400) and r.json()["error"]["param"] == "top_logprobs"
    r = tiny_server.client.post("/v1/chat/completions", json={**chat, "logprobs": True, "top_logprobs": 21})
    assert_error(r, 422)
    r = tiny_server.client.post("/v1/completions", json={"model": "tiny-a", "prompt": "a", "logprobs": -1})
    assert_error(r, 422)
