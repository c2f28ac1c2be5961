"""The GGUF server on its embedded default models (Gemma 3 270M for completion, Qwen2.5-Coder 0.5B
Instruct for chat): real text, startup, queueing, slots, disconnects."""

from __future__ import annotations

import contextlib
import json
import socket
import time

import httpx
import openai
import pytest

pytestmark = pytest.mark.slow

COUNTING = "1, 2, 3, 4, 5, 6, 7, 8, 9, 10,"


@pytest.fixture(scope="module")
def startup(module_server):
    """Start with no config at all; record what the first answers said while loading."""
    # early_start off: loading then begins in the lifespan, just before the port is bound, so the
    # "loading" window is the whole load (~0.7 s) on any machine, not load minus import time.
    srv = module_server(env={"GGUF_MAX_WAITING_PER_MODEL": "0", "GGUF_EARLY_START": "false"})
    srv.wait_live(timeout=120)
    first_health = srv.client.get("/health")
    first_generate = srv.client.post("/generate", json={"prompt": "x", "max_tokens": 1})
    settled = srv.wait_settled(timeout=180)
    return srv, first_health, first_generate, settled


def admitted_within(srv, seconds: float) -> httpx.Response:
    """A short /generate, retried while the model answers 429 (all sequences busy), for ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        r = srv.client.post("/generate", json={"prompt": "The capital of France is", "max_tokens": 4})
        if r.status_code != 429 or time.monotonic() > deadline:
            return r
        time.sleep(0.2)


@pytest.fixture(scope="module")
def gemma(startup):
    return startup[0]


def test_health_goes_from_503_loading_to_200_healthy(startup) -> None:
    srv, first, _, settled = startup
    assert first.status_code == 503 and first.json()["status"] == "loading"
    assert first.headers["Retry-After"] == "1"
    assert first.json()["models"]["gemma-3-270m"]["state"] in ("pending", "loading")
    assert settled["status"] == "healthy"
    r = srv.client.get("/health")
    assert r.status_code == 200 and r.json()["models"]["gemma-3-270m"]["load_seconds"] > 0
    assert srv.client.get("/health/ready").status_code == 200


def test_request_while_loading_is_503_with_retry_after(startup) -> None:
    r = startup[2]
    assert r.status_code == 503, r.text
    assert r.json()["error"]["code"] == "model_loading" and r.headers["Retry-After"] == "1"


def test_generate_real_text(gemma) -> None:
    r = gemma.client.post("/generate", json={"prompt": "The capital of France is", "max_tokens": 16,
                                             "temperature": 0})
    assert r.status_code == 200, r.text
    text = r.json()["text"]
    assert "France" in text or "Paris" in text, text
    assert r.json()["model"] == "gemma-3-270m"


def test_openai_sdk_completion_real_text(gemma) -> None:
    client = openai.OpenAI(base_url=f"{gemma.url}/v1", api_key="unused", max_retries=0)
    c = client.completions.create(model="gemma-3-270m", prompt="The capital of France is", max_tokens=16,
                                  temperature=0)
    assert "France" in c.choices[0].text or "Paris" in c.choices[0].text


def test_busy_model_with_full_queue_is_429_and_disconnect_frees_it(gemma) -> None:
    body = {"prompt": COUNTING, "max_tokens": 1500, "temperature": 0, "stream": True}
    with contextlib.ExitStack() as stack:
        # Fill every sequence of the model (parallel: 4) with a long stream.
        streams = []  # the line iterators must stay referenced: dropping one closes its connection
        for _ in range(4):
            streamer = stack.enter_context(httpx.Client(base_url=gemma.url, timeout=60))
            r = stack.enter_context(streamer.stream("POST", "/generate", json=body))
            assert r.status_code == 200
            streams.append(r.iter_lines())
            first = next(line for line in streams[-1] if line.startswith("data: "))
            assert json.loads(first[6:])["text"]
        # With no waiting allowed, the next request is refused before any work, with a retry hint.
        busy = gemma.client.post("/generate", json={"prompt": "x", "max_tokens": 1})
        assert busy.status_code == 429, busy.text
        assert int(busy.headers["Retry-After"]) >= 1
        assert "busy" in busy.json()["error"]["message"]
    # Leaving the `with` closed the connections mid-stream: the generations must stop and free their
    # sequences long before 1500 tokens (~40 s) would have been produced.
    r = admitted_within(gemma, 20)
    assert r.status_code == 200, "generation did not stop after the client disconnected"
    assert r.json()["timings"]["queue_seconds"] < 5


def test_same_request_same_text_whatever_came_before(gemma) -> None:
    """temperature 0 + seed + ``cache_prompt: false``: the answer must not depend on the previous
    request's prompt (reusing its cached prefix changed the text: "...a little girl named Lily..." vs
    "...a man named John...")."""
    def gen(prompt: str) -> str:
        r = gemma.client.post("/generate", json={"prompt": prompt, "max_tokens": 32, "temperature": 0, "seed": 42,
                                                 "cache_prompt": False})
        assert r.status_code == 200, r.text
        return str(r.json()["text"])

    target = "Once upon a time"
    # Seen here before the fix: three different continuations after these three.
    others = ["Once", "Once upon a", "Hello world", "Once upon a time"]
    seen = set()
    for other in others:
        gen(other)
        seen.add(gen(target))
    assert len(seen) == 1, seen


def test_control_tokens_and_image_placeholders_never_appear_as_text(gemma) -> None:
    # Without the filter Gemma 3 continues this with literal "<start_of_image>" tokens.
    prompt = "Image: <start_of_image> A cat. Image: <start_of_image> A dog. Image:"
    for route, body, text_of in (
        ("/generate", {"prompt": prompt}, lambda j: j["text"]),
        ("/v1/completions", {"model": "gemma-3-270m", "prompt": prompt}, lambda j: j["choices"][0]["text"]),
    ):
        r = gemma.client.post(route, json={**body, "max_tokens": 24, "temperature": 0})
        assert r.status_code == 200, r.text
        text = text_of(r.json())
        assert text.strip() and "<start_of_image>" not in text and "<bos>" not in text, text


def test_the_suppressed_set_keeps_end_of_generation_and_ordinary_markup() -> None:
    from gguf_model_server.llama_native import NativeModel, banned_tokens, longest_piece_bytes
    from model_store.embedded import DEFAULT_MODEL_NAME, embedded_model_path

    model = NativeModel(embedded_model_path(DEFAULT_MODEL_NAME), use_mmap=True, use_mlock=False)
    banned = set(banned_tokens(model))
    ids = {t: model.tokenize(t, add_special=False, parse_special=True, limit=8) for t in
           ("<start_of_image>", "<bos>", "<eos>", "<end_of_turn>", "\n\n", "<table>")}
    assert ids["<start_of_image>"][0] in banned and ids["<bos>"][0] in banned
    for kept in ("<eos>", "<end_of_turn>", "\n\n", "<table>"):  # generation must still end; markup is text
        assert ids[kept][0] not in banned, kept
    # A raw prompt's "<bos>" is text, not the control token (no injected control tokens).
    assert ids["<bos>"][0] not in model.tokenize("<bos>", add_special=False, parse_special=False, limit=8)
    assert longest_piece_bytes(model) == 48  # llama.cpp's load log says "max token length = 48"
    model.close()


def test_chat_through_the_template_answers_from_the_default_chat_model(gemma) -> None:
    client = openai.OpenAI(base_url=f"{gemma.url}/v1", api_key="unused", max_retries=0)
    r = client.chat.completions.create(model="qwen2.5-0.5b-instruct", temperature=0, max_tokens=32,
                                       messages=[{"role": "user", "content": "What is the capital of France?"}])
    answer = r.choices[0].message.content or ""
    assert "Paris" in answer, answer
    assert "<|im_end|>" not in answer and "<|im_start|>" not in answer
    assert r.choices[0].finish_reason == "stop"
    assert 0 < r.usage.completion_tokens < 32 and r.usage.prompt_tokens > 10  # the template's tokens count too


def test_chat_without_a_model_goes_to_the_first_model_with_a_chat_template(gemma) -> None:
    # Gemma 3 270M (first, a base model without a template) keeps completion; chat goes to Qwen.
    client = openai.OpenAI(base_url=f"{gemma.url}/v1", api_key="unused", max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model=None, temperature=0, max_tokens=16,  # type: ignore[arg-type]
        messages=[{"role": "user", "content": "What is the capital of France?"}])
    assert raw.parse().model == "qwen2.5-0.5b-instruct" and "X-Chat-Template" not in raw.headers
    assert gemma.client.post("/v1/completions", json={"prompt": "The", "max_tokens": 1}).json()["model"] == \
        "gemma-3-270m"


@pytest.mark.parametrize("stream", [False, True])
def test_chat_on_a_model_without_a_template_says_so_and_never_shows_role_markup(gemma, stream: bool) -> None:
    body = {"model": "gemma-3-270m", "temperature": 0, "max_tokens": 64, "stream": stream,
            "messages": [{"role": "user", "content": "The name of this country is"}]}
    r = gemma.client.post("/v1/chat/completions", json=body)
    assert r.status_code == 200 and r.headers["X-Chat-Template"] == "chatml-fallback", r.text
    if stream:
        chunks = [json.loads(line[6:]) for line in r.text.splitlines() if line.startswith("data: {")]
        text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    else:
        text = r.json()["choices"][0]["message"]["content"]
    assert "<|im_end|>" not in text and "<|im_start|>" not in text, text


def test_context_overflow_is_400_before_any_stream_starts(gemma) -> None:
    n_ctx = 2048
    too_long = "word " * (n_ctx + 100)
    for route, body in (
        ("/generate", {"prompt": too_long, "stream": True}),
        ("/v1/completions", {"prompt": too_long, "stream": True}),
        ("/v1/chat/completions", {"model": "qwen2.5-0.5b-instruct", "stream": True,
                                  "messages": [{"role": "user", "content": too_long}]}),
        ("/generate", {"prompt": "Hello", "max_tokens": n_ctx + 1, "stream": True}),
    ):
        r = gemma.client.post(route, json=body)
        assert r.status_code == 400, (route, r.text)
        assert "context window" in r.json()["error"]["message"], r.text
    # Without an explicit max_tokens, a long prompt gets what still fits instead of an error.
    near = "word " * (n_ctx - 150)
    r = gemma.client.post("/generate", json={"prompt": near, "max_tokens": 4})
    assert r.status_code == 200, r.text


def test_a_huge_prompt_is_refused_before_tokenizing(gemma) -> None:
    # 7.9 MiB of text: refused from its byte count (it cannot fit 2048 tokens), in well under the
    # 11-13 s that tokenizing it took.
    t0 = time.monotonic()
    r = gemma.client.post("/generate", json={"prompt": "ab " * (2_760_000), "max_tokens": 1}, timeout=60)
    assert r.status_code == 400, r.text[:300]
    assert "bytes" in r.json()["error"]["message"]
    assert time.monotonic() - t0 < 10  # a generous bound; the point is "not tokenized"


def test_abandoned_non_streaming_requests_stop_decoding(gemma) -> None:
    # Four clients ask for 1500 tokens each and hang up after 1 s: their sequences must be freed, so
    # the next request does not wait for ~6000 tokens of nobody's text.
    for _ in range(4):
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(f"{gemma.url}/generate", json={"prompt": COUNTING, "max_tokens": 1500}, timeout=1.0)
    time.sleep(0.5)
    r = gemma.client.post("/generate", json={"prompt": "The capital of France is", "max_tokens": 4})
    assert r.status_code == 200, r.text
    # Not a fixed number of seconds (a loaded machine decodes several times slower): the wait must be
    # far below what one abandoned request's remaining ~1500 tokens take at this machine's own speed.
    timings = r.json()["timings"]
    assert timings["tokens_per_second"], r.json()
    assert timings["queue_seconds"] < max(2.0, 300 / timings["tokens_per_second"]), r.json()


def test_streams_whose_clients_left_before_the_response_free_their_sequences(gemma) -> None:
    # A client that sends a streaming request and leaves at once (before the 200 could be sent):
    # its generation must not run on for nobody. Four of them would otherwise fill every sequence
    # and, with no waiting allowed, the next request would get 429.
    host, port = gemma.url.removeprefix("http://").split(":")
    body = json.dumps({"prompt": COUNTING, "max_tokens": 1500, "stream": True}).encode()
    head = (f"POST /generate HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    for _ in range(4):
        with socket.create_connection((host, int(port))) as s:
            s.sendall(head + body)
    assert admitted_within(gemma, 20).status_code == 200, "abandoned streams kept their sequences"


def test_repack_false_loads_the_weights_without_llamas_repacked_copy() -> None:
    """`options.repack` reaches llama.cpp: without repacking, no anonymous copy of the weights is made
    (the embedded Qwen 0.5B: ~29 MB of repacked tensors); the model loads and tokenizes either way."""
    import subprocess
    import sys

    code = """
import sys
from model_store.embedded import embedded_model_path
from gguf_model_server.llama_native import NativeModel
m = NativeModel(embedded_model_path("qwen2.5-0.5b-instruct"), use_mmap=True, use_mlock=False,
                repack=sys.argv[1] == "1")
tokens = m.tokenize("Hello", add_special=True, parse_special=False, limit=16)
assert tokens, "no tokens"
print(next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("RssAnon")))
"""
    anon = {}
    for repack in ("1", "0"):
        r = subprocess.run([sys.executable, "-c", code, repack], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr[-2000:]
        anon[repack] = int(r.stdout.split()[-1])
    assert anon["1"] - anon["0"] > 10_000, anon  # kB: the repacked copy exists only with repack on
