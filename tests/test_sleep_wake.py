"""Sleep and wake on a real GGUF server: a sleeping model frees its KV cache (level 1) or its
weights too (level 2), shows as `sleeping`, and its next request wakes it with the same answers."""

from __future__ import annotations

import time

import pytest

from conftest import TINY_OPTS, StreamReader, assert_error, start_configured

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(module_server, model_files, tmp_path_factory):
    return start_configured(module_server, model_files, tmp_path_factory, [
        {"name": "tiny-a", "backend": "llama_cpp", "path": "tiny-a.gguf", "options": TINY_OPTS},
        {"name": "tiny-b", "backend": "llama_cpp", "path": "tiny-b.gguf", "options": TINY_OPTS,
         "keep_alive": 0.5, "on_idle": "sleep"},
    ], idle_check_seconds=0.2)


def generate(server, model: str) -> str:
    r = server.client.post("/generate", json={"model": model, "prompt": "the", "max_tokens": 12, "temperature": 0})
    assert r.status_code == 200, r.text
    return str(r.json()["text"])


@pytest.mark.parametrize("level", [1, 2])
def test_a_model_sleeps_and_its_next_request_wakes_it_with_the_same_answers(server, level) -> None:
    before = generate(server, "tiny-a")
    r = server.client.post(f"/models/tiny-a/sleep?level={level}")
    assert r.status_code == 200, r.text
    assert (r.json()["state"], r.json()["sleep_level"]) == ("sleeping", level)
    health = server.client.get("/health")
    assert health.status_code == 200  # asleep is serviceable, like loaded on demand
    assert health.json()["models"]["tiny-a"]["state"] == "sleeping"
    listed = {m["id"]: m["state"] for m in server.client.get("/v1/models").json()["data"]}
    assert listed["tiny-a"] == "sleeping"
    assert 'gguf_model_state{model="tiny-a",state="sleeping"} 1.0' in server.client.get("/metrics").text
    assert generate(server, "tiny-a") == before
    assert server.client.get("/health").json()["models"]["tiny-a"]["state"] == "ready"
    assert "Waking model 'tiny-a'" in server.log()


def test_wake_route_and_level_bounds(server) -> None:
    assert server.client.post("/models/tiny-a/sleep").json()["sleep_level"] == 1  # level 1 by default
    r = server.client.post("/models/tiny-a/wake")
    assert r.status_code == 200 and r.json()["state"] == "ready"
    assert_error(server.client.post("/models/tiny-a/sleep?level=3"), 422)


def test_a_model_serving_a_request_does_not_sleep(server) -> None:
    """409 while a stream holds the model, and the stream is unharmed. A tiny model streams fast: the
    attempt is repeated until the sleep request lands inside a stream (it did in the first, here)."""
    refusals = 0
    for _ in range(5):
        stream = StreamReader(server.url, "/generate", {"model": "tiny-a", "prompt": "the", "max_tokens": 240,
                                                        "temperature": 0.9, "grammar": "root ::= [a-z ]+"})
        assert stream.started.wait(60), stream.error
        r = server.client.post("/models/tiny-a/sleep")
        stream.join(120)
        assert stream.error is None and stream.events[-1] == "[DONE]"
        if r.status_code == 409:
            assert "serving requests" in assert_error(r, 409)
            refusals += 1
            break
        assert r.status_code == 200 and server.client.post("/models/tiny-a/wake").status_code == 200
    assert refusals == 1


def test_an_idle_model_goes_to_sleep_with_on_idle_sleep(server) -> None:
    generate(server, "tiny-b")
    deadline = time.monotonic() + 30
    while server.client.get("/health").json()["models"]["tiny-b"]["state"] != "sleeping":
        assert time.monotonic() < deadline, "tiny-b never went to sleep"
        time.sleep(0.1)
    assert generate(server, "tiny-b")
