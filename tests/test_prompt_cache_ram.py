"""The RAM prompt cache (issue 20, llama-server's --cache-ram): a conversation whose sequence was
taken by other prompts gets its KV back from host memory instead of evaluating it again."""

from __future__ import annotations

import httpx
import openai
import pytest

from gguf_model_server.prompt_cache import MIN_TOKENS, PromptCache

from conftest import start_configured

CHATS = {name: " ".join(f"{name} {i}" for i in range(8)) for name in ("alpha", "beta")}


def test_the_cache_keeps_the_newest_within_its_budget_and_a_longer_state_supersedes_its_start() -> None:
    cache = PromptCache(limit_bytes=250)
    a, b = list(range(100, 140)), list(range(200, 240))
    cache.save(a, b"x" * 100)
    cache.save([*a, 1, 2], b"y" * 100)  # the same conversation, further on: the shorter state goes
    assert len(cache) == 1 and cache.bytes == 100
    cache.save(b, b"z" * 100)
    cache.save(list(range(300, 340)), b"w" * 100)  # over 250 bytes: the least recently used goes
    assert len(cache) == 2 and cache.bytes == 200
    assert cache.take([*a, 1, 2, 3], better_than=0) is None and cache.misses == 1
    hit = cache.take([*b, 7], better_than=0)
    assert hit is not None and hit.state == b"z" * 100 and cache.hits == 1
    assert len(cache) == 1  # taken whole: the sequence holds it now
    assert cache.take(list(range(300, 300 + MIN_TOKENS - 2)), better_than=0) is None  # too short to matter


@pytest.fixture(scope="module")
def one_slot(module_server, model_files, tmp_path_factory):
    opts = {"n_ctx": 256, "n_threads": 1, "parallel": 1}
    return start_configured(module_server, model_files, tmp_path_factory, [
        {"name": "cached", "backend": "llama_cpp", "path": "tiny-a.gguf", "options": opts},
        {"name": "uncached", "backend": "llama_cpp", "path": "tiny-a.gguf", "options": {**opts, "cache_ram_mib": 0}},
    ])


def generate(srv, model: str, prompt: str, **extra: object) -> dict:
    r = srv.client.post("/v1/completions", json={"model": model, "prompt": prompt, "max_tokens": 8,
                                                 "temperature": 0, **extra})
    assert r.status_code == 200, r.text
    return r.json()


def metric(srv, name: str, model: str) -> float:
    for line in httpx.get(f"{srv.url}/metrics", timeout=15).text.splitlines():
        if line.startswith(f'gguf_{name}{{model="{model}"}}'):
            return float(line.split()[-1])
    raise AssertionError(f"no {name} for {model}")


def test_a_returning_prompt_comes_back_from_ram_with_the_same_answer(one_slot) -> None:
    reference = generate(one_slot, "cached", CHATS["alpha"], cache_prompt=False)["choices"][0]["text"]
    generate(one_slot, "cached", CHATS["alpha"])
    generate(one_slot, "cached", CHATS["beta"])  # one sequence: alpha's KV is overwritten (saved first)
    assert metric(one_slot, "prompt_cache_ram_bytes", "cached") > 0
    back = generate(one_slot, "cached", CHATS["alpha"] + " and more")
    usage, timings = back["usage"], back["timings"]
    assert usage["prompt_tokens_details"]["cached_tokens"] >= usage["prompt_tokens"] // 2
    assert timings["prompt_tokens_from_ram"] == usage["prompt_tokens_details"]["cached_tokens"]
    assert metric(one_slot, "prompt_cache_ram_hits_total", "cached") >= 1
    again = generate(one_slot, "cached", CHATS["beta"])  # beta, saved when alpha came back
    assert again["timings"]["prompt_tokens_from_ram"] > 0
    restored = generate(one_slot, "cached", CHATS["alpha"])
    assert restored["timings"]["prompt_tokens_from_ram"] > 0
    assert restored["choices"][0]["text"] == reference  # the restored KV is the KV


def test_without_the_cache_the_prompt_is_evaluated_again(one_slot) -> None:
    for name in ("alpha", "beta", "alpha"):
        r = generate(one_slot, "uncached", CHATS[name])
    assert r["timings"]["prompt_tokens_from_ram"] == 0
    assert r["usage"]["prompt_tokens_details"]["cached_tokens"] <= 1  # the start-of-text token beta shares
    assert metric(one_slot, "prompt_cache_ram_bytes", "uncached") == 0


def test_the_sdk_reads_the_cached_tokens_of_a_returning_prompt(one_slot) -> None:
    client = openai.OpenAI(base_url=f"{one_slot.url}/v1", api_key="unused", max_retries=0, timeout=60)
    prompts = {name: " ".join(f"{name} {i}" for i in range(8)) for name in ("gamma", "delta")}
    for name in ("gamma", "delta"):  # delta takes gamma's only sequence: gamma's KV goes to RAM
        client.completions.create(model="cached", prompt=prompts[name], max_tokens=2, temperature=0)
    back = client.completions.create(model="cached", prompt=prompts["gamma"], max_tokens=2, temperature=0)
    assert back.usage.prompt_tokens_details.cached_tokens >= back.usage.prompt_tokens // 2
