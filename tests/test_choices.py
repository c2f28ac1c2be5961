"""``n`` choices (issue 20): one prompt evaluated once and shared (its KV copied to the other
sequences), independent samples with seeds derived from the request's, usage counting every choice."""

from __future__ import annotations

import asyncio

import httpx
import openai
import pytest
from engine_harness import load

from gguf_model_server.engine import GenerationRequest
from gguf_model_server.generation_params import SamplingConfig

from conftest import assert_error

MESSAGES = [{"role": "user", "content": "tell me about the capital of France"}]


@pytest.fixture(scope="module")
def client(tiny_server) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{tiny_server.url}/v1", api_key="unused", max_retries=0, timeout=60)


def cached_tokens(url: str, model: str) -> float:
    for line in httpx.get(f"{url}/metrics", timeout=15).text.splitlines():
        if line.startswith(f'gguf_prompt_tokens_cached_total{{model="{model}"}}'):
            return float(line.split()[-1])
    return 0.0


def test_greedy_choices_are_the_single_answer_and_the_prompt_is_evaluated_once(client, tiny_server) -> None:
    greedy = {"model": "tiny-c", "messages": MESSAGES, "max_tokens": 12, "temperature": 0,
              "extra_body": {"cache_prompt": False}}
    one = client.chat.completions.create(**greedy)
    before = cached_tokens(tiny_server.url, "tiny-c")
    three = client.chat.completions.create(n=3, **greedy)
    assert [c.index for c in three.choices] == [0, 1, 2]
    assert {c.message.content for c in three.choices} == {one.choices[0].message.content}
    assert three.usage.prompt_tokens == one.usage.prompt_tokens  # the prompt counts once
    assert three.usage.completion_tokens == 3 * one.usage.completion_tokens
    # cache_prompt false: nothing from earlier requests is reused, so every cached token is the
    # leader's prompt copied to the two other choices (all but the last token, evaluated for logits).
    assert cached_tokens(tiny_server.url, "tiny-c") - before == 2 * (one.usage.prompt_tokens - 1)


def test_sampled_choices_differ_and_a_seed_reproduces_them(client) -> None:
    sampled = {"model": "tiny-a", "prompt": "the", "max_tokens": 12, "temperature": 1.0, "seed": 42, "n": 3,
               "extra_body": {"cache_prompt": False}}
    first = [c.text for c in client.completions.create(**sampled).choices]
    assert len(set(first)) > 1  # seeds 42, 43, 44: independent samples
    assert [c.text for c in client.completions.create(**sampled).choices] == first


def test_streamed_choices_each_end_and_usage_counts_all(client) -> None:
    stream = client.chat.completions.create(model="tiny-b", messages=MESSAGES, max_tokens=6, n=2, temperature=1.0,
                                            seed=3, stream=True, stream_options={"include_usage": True})
    texts, finished, usage = {0: "", 1: ""}, set(), None
    for chunk in stream:
        usage = chunk.usage or usage
        for choice in chunk.choices:
            texts[choice.index] += choice.delta.content or ""
            if choice.finish_reason:
                finished.add(choice.index)
    assert finished == {0, 1} and all(texts.values())
    assert usage is not None and usage.completion_tokens <= 12 and usage.completion_tokens >= 2


def test_more_choices_than_sequences_is_refused(tiny_server) -> None:
    r = tiny_server.client.post("/v1/completions", json={"model": "tiny-a", "prompt": "a", "n": 9, "max_tokens": 2})
    message = assert_error(r, 400)
    assert "options.parallel" in message and r.json()["error"]["param"] == "n"
    assert tiny_server.client.post("/v1/completions", json={"model": "tiny-a", "prompt": "a", "n": 2,
                                                            "max_tokens": 2}).status_code == 200


def test_choices_whose_leader_is_dropped_unstarted_still_finish(model_files) -> None:
    model = load("tiny-n", model_files["a"], n_ctx=128, parallel=3)

    async def run() -> list[str]:
        request = GenerationRequest(prompt=model.tokenize_prompt("the"), max_tokens=4,
                                    sampling=SamplingConfig(temperature=0))
        generations = model.engine.enqueue_choices([model.engine.prepare(request) for _ in range(3)])
        generations[0].cancel()  # before the engine admits it: it never runs
        return await asyncio.wait_for(asyncio.gather(*(g.text() for g in generations[1:])), timeout=60)

    try:
        texts = asyncio.run(run())
    finally:
        model.close()
    assert len(texts) == 2 and texts[0] == texts[1]
