"""SIGTERM / SIGINT while a model call runs: the call is stopped, the model is freed only after the
thread left it, and the process exits cleanly (it used to segfault inside llama.cpp)."""

from __future__ import annotations

import json
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest

from conftest import StreamReader, write_config
from media import speak_wav, varied_sentences

# A generation that cannot end by itself before shutdown cuts it: Gemma counts greedily for all
# 1500 tokens (a story at temperature 0.7 may end after a few hundred, on a fast machine before the
# signal's grace is over).
LONG = {"prompt": "1, 2, 3, 4, 5, 6, 7, 8, 9, 10,", "max_tokens": 1500, "temperature": 0}

pytestmark = pytest.mark.slow

SIGSEGV_EXIT = -signal.SIGSEGV


def _in_background(fn) -> dict[str, object]:
    """Run ``fn`` in a thread; the returned dict gets its result (or exception) under "out"."""
    box: dict[str, object] = {}

    def run() -> None:
        try:
            box["out"] = fn()
        except Exception as exc:  # noqa: BLE001 - the test inspects it
            box["out"] = exc

    box["thread"] = threading.Thread(target=run, daemon=True)
    box["thread"].start()  # type: ignore[attr-defined]
    return box


def _wait_until_draining(srv, timeout: float = 60) -> None:
    """Until /health/ready says the drain began (or, past a short grace, the server is already gone)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            r = httpx.get(f"{srv.url}/health/ready", timeout=5)
            if r.status_code == 503 and r.json().get("status") == "draining":
                return
        except httpx.TransportError:
            if srv.proc.poll() is not None:
                return
        assert time.monotonic() < deadline, f"the drain never began:\n{srv.log()}"
        time.sleep(0.05)


def test_sigterm_during_a_long_generation_exits_cleanly(start_server) -> None:
    # The reproduction: a 1500-token /generate (~40 s on Gemma 3 270M), SIGTERM after it started,
    # past uvicorn's grace period (shortened to 1 s here).
    srv = start_server(env={"GGUF_SHUTDOWN_GRACE_SECONDS": "1"})
    srv.wait_settled(timeout=120)
    url = srv.url
    box = _in_background(lambda: httpx.post(f"{url}/generate", timeout=120,
                                            json=LONG))
    time.sleep(3)
    code = srv.signal_and_wait(signal.SIGTERM)
    log = srv.log()
    assert code != SIGSEGV_EXIT, log
    assert code == 0, log
    # The running generation was stopped (uvicorn cancels the request after its grace, which frees
    # the sequence; a decode still running is finished before the engine frees the model).
    assert "models released" in log, log
    assert "Traceback" not in log, log
    box["thread"].join(30)  # type: ignore[attr-defined]
    out = box["out"]
    # The client learns why its generation ended (or, at worst, sees the connection close).
    if isinstance(out, httpx.Response):
        assert out.status_code == 503 and out.json()["error"]["code"] == "shutting_down", log
    else:
        assert isinstance(out, httpx.TransportError)


def test_sigint_during_a_stream_exits_130_without_crashing(start_server) -> None:
    srv = start_server(env={"GGUF_SHUTDOWN_GRACE_SECONDS": "0"})
    srv.wait_settled(timeout=120)
    stream = StreamReader(srv.url, "/v1/completions", LONG)
    assert stream.started.wait(60), srv.log()
    code = srv.signal_and_wait(signal.SIGINT)
    assert code == 130, srv.log()
    stream.join(30)
    events = stream.events
    assert "models released" in srv.log()
    # The stream ended early (far fewer than 1500 token events), and properly: an error event, [DONE].
    assert len(events) < 1500
    assert events[-1] == "[DONE]", events[-3:]
    assert json.loads(events[-2])["error"]["code"] == "shutting_down", events[-3:]
    assert "Traceback" not in srv.log()


@pytest.mark.parametrize("second_signal", [False, True], ids=["grace-ends", "second-signal"])
def test_a_stream_cut_by_shutdown_ends_with_an_error_event_and_done(start_server, second_signal: bool) -> None:
    # Past the grace (1 s), or at a second signal within a long grace, a running stream is stopped:
    # it must end as a stream does (an error event, then [DONE]), not be cut mid-chunk.
    srv = start_server(env={"GGUF_SHUTDOWN_GRACE_SECONDS": "60" if second_signal else "1"})
    srv.wait_settled(timeout=120)
    stream = StreamReader(srv.url, "/generate", LONG)
    assert stream.started.wait(60), srv.log()
    srv.proc.send_signal(signal.SIGTERM)
    _wait_until_draining(srv)
    if second_signal:
        time.sleep(0.5)
        srv.proc.send_signal(signal.SIGTERM)
    assert srv.proc.wait(60) == 0, srv.log()
    stream.join(30)
    events = stream.events
    assert stream.error is None, stream.error  # the client read a complete response
    assert 1 < len(events) < 1500
    assert events[-1] == "[DONE]", events[-3:]
    assert json.loads(events[-2])["error"]["code"] == "shutting_down", events[-3:]
    log = srv.log()
    assert "Traceback" not in log and "Cancel" not in log, log


def test_sigterm_during_a_transcription_frees_whisper_after_the_call(start_server, tmp_path: Path) -> None:
    # ~100 s of speech: faster-whisper can only be stopped between segments (each 30 s window ~1-8 s here).
    long_speech = speak_wav(varied_sentences(30), tmp_path / "long.wav")
    # Window by window (batched decoding would make the whole file one uninterruptible batch: OPERATIONS).
    config = write_config(tmp_path / "asr.yaml", models=[
        {"name": "whisper-tiny.en", "backend": "faster_whisper", "options": {"batch_min_seconds": None}}])
    srv = start_server("asr_ocr_model_server", config=config, env={"ASR_OCR_SHUTDOWN_GRACE_SECONDS": "0",
                                                                   "ASR_OCR_SHUTDOWN_DRAIN_SECONDS": "2"})
    srv.wait_settled(timeout=120)
    data = long_speech.read_bytes()
    url = srv.url
    box = _in_background(lambda: httpx.post(f"{url}/asr", files={"audio": ("long.wav", data)}, timeout=120))
    time.sleep(1.5)  # decoding done, transcription running (it takes several seconds)
    t0 = time.monotonic()
    code = srv.signal_and_wait(signal.SIGTERM)
    took = time.monotonic() - t0
    log = srv.log()
    assert code == 0, log
    # The bound holds on a loaded machine too, where one Whisper window takes tens of seconds: grace 0
    # + 3 s of steps + drain 2 + 5 s margin (serving_core.cli.shutdown_bound), + 5 s for a loaded
    # machine to schedule the exit.
    assert took < 0 + 3 + 2 + 5 + 5, (took, log)
    # The running generation was stopped (uvicorn cancels the request after its grace, which frees
    # the sequence; a decode still running is finished before the engine frees the model).
    assert "models released" in log, log
    assert "Exception in ASGI application" not in log and "Traceback" not in log, log
    box["thread"].join(30)  # type: ignore[attr-defined]
    out = box["out"]
    if isinstance(out, httpx.Response):
        assert out.status_code == 503 and out.json()["error"]["code"] == "shutting_down", log


def test_sigterm_drains_a_running_stream_and_refuses_new_work(start_server) -> None:
    srv = start_server(env={"GGUF_SHUTDOWN_GRACE_SECONDS": "60"})
    srv.wait_settled(timeout=120)
    url = srv.url
    stream = StreamReader(url, "/generate", {"prompt": "Once upon a time", "max_tokens": 120, "temperature": 0})
    assert stream.started.wait(60)
    srv.proc.send_signal(signal.SIGTERM)
    _wait_until_draining(srv)
    # While draining: probes see it at once, new work is refused with a hint, nothing is cut.
    ready = httpx.get(f"{url}/health/ready", timeout=10)
    assert ready.status_code == 503 and ready.json()["status"] == "draining"
    assert httpx.get(f"{url}/health/live", timeout=10).status_code == 200
    refused = httpx.post(f"{url}/generate", json={"prompt": "x", "max_tokens": 1}, timeout=10)
    assert refused.status_code == 503 and refused.json()["error"]["code"] == "shutting_down"
    assert int(refused.headers["Retry-After"]) >= 1
    stream.join(120)
    events = stream.events
    assert stream.error is None, stream.error
    assert events[-1] == "[DONE]"
    final = json.loads(events[-2])
    assert final["finish_reason"] == "length" and final["usage"]["completion_tokens"] == 120, final
    assert srv.proc.wait(60) == 0
    log = srv.log()
    assert "models released" in log and "Traceback" not in log, log
