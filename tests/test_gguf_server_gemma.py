"""The GGUF server on its embedded default model (Gemma 3 270M): real text, startup, queueing."""

from __future__ import annotations

import json
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
    with httpx.Client(base_url=gemma.url, timeout=60) as streamer, \
            streamer.stream("POST", "/generate", json=body) as r:
        assert r.status_code == 200
        lines = r.iter_lines()
        first = next(line for line in lines if line.startswith("data: "))
        assert json.loads(first[6:])["text"]
        # The model is now generating for the stream; with no waiting allowed, the next is refused.
        busy = gemma.client.post("/generate", json={"prompt": "x", "max_tokens": 1})
        assert busy.status_code == 429, busy.text
        assert busy.headers["Retry-After"] == "1"
        assert "busy" in busy.json()["error"]["message"]
    # Leaving the `with` closed the connection mid-stream: the generation must stop and free the
    # model long before 1500 tokens (~40 s) would have been produced.
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        r = gemma.client.post("/generate", json={"prompt": "The capital of France is", "max_tokens": 4})
        if r.status_code == 200:
            break
        assert r.status_code == 429
        time.sleep(0.2)
    assert r.status_code == 200, "generation did not stop after the client disconnected"


def test_same_request_same_text_whatever_came_before(gemma) -> None:
    """temperature 0 + seed: the answer must not depend on the previous request's prompt (reusing its
    cached prefix changed the text: "...a little girl named Lily..." vs "...a man named John...")."""
    def gen(prompt: str) -> str:
        r = gemma.client.post("/generate", json={"prompt": prompt, "max_tokens": 32, "temperature": 0, "seed": 42})
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
    import llama_cpp

    from gguf_model_server.default_model import default_model_path
    from gguf_model_server.special_tokens import scan_suppressed

    llm = llama_cpp.Llama(model_path=str(default_model_path()), n_ctx=64, n_threads=1, verbose=False)
    banned = set(scan_suppressed(llm).tolist())
    ids = {t: llm.tokenize(t.encode(), add_bos=False, special=True) for t in
           ("<start_of_image>", "<bos>", "<eos>", "<end_of_turn>", "\n\n", "<table>")}
    assert ids["<start_of_image>"][0] in banned and ids["<bos>"][0] in banned
    for kept in ("<eos>", "<end_of_turn>", "\n\n", "<table>"):  # generation must still end; markup is text
        assert ids[kept][0] not in banned, kept
    llm.close()
