"""The openai-whisper and transformers backends (tiny models the tests build), failures, and queueing."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest

from conftest import write_config
from media import render_text_image, speak_wav
from tiny_asr_ocr_models import TINY_OCR_TEXT, TINY_WHISPER_TEXT, write_tiny_openai_whisper, write_tiny_vision_ocr

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("asr-ocr-models")
    return {
        "dir": d,
        "whisper": write_tiny_openai_whisper(d / "tiny-whisper.pt"),
        "vision": write_tiny_vision_ocr(d / "tiny-vision-ocr"),
        "wav": speak_wav("Testing one two three.", d / "speech.wav"),
        "png": render_text_image(["Some text"], d / "text.png"),
        "empty_cache": d / "whisper-cache",
        "fifo": _fifo(d / "pipe.pt"),
    }


def _fifo(path):
    os.mkfifo(path)
    return path


@pytest.fixture(scope="module")
def server(module_server, files, tmp_path_factory):
    cfg = write_config(
        tmp_path_factory.mktemp("cfg") / "asr-ocr.yaml",
        model_dir=str(files["dir"]),
        max_waiting_per_model=0,
        models=[
            {"name": "tiny-whisper", "backend": "openai_whisper", "path": "tiny-whisper.pt"},
            {"name": "tiny-ocr", "backend": "transformers", "path": "tiny-vision-ocr",
             "options": {"max_new_tokens": 16}},
            {"name": "base-en", "backend": "openai_whisper", "path": "base.en",
             "options": {"cache_dir": str(files["empty_cache"])}},
            {"name": "missing-fw", "backend": "faster_whisper", "path": "no-such-dir"},
            {"name": "ocr-no-dir", "backend": "transformers", "path": "no-such-model"},
            {"name": "rapid-with-path", "backend": "rapidocr", "path": "x.onnx"},
            {"name": "fifo-whisper", "backend": "openai_whisper", "path": "pipe.pt"},
        ],
    )
    srv = module_server("asr_ocr_model_server", config=cfg, env={"HF_HUB_OFFLINE": "1"})
    srv.wait_settled(timeout=240)
    return srv


def test_health_reports_ready_and_failed_models_with_reasons(server) -> None:
    r = server.client.get("/health")
    body = r.json()
    assert r.status_code == 200 and body["status"] == "degraded"
    m = body["models"]
    assert m["tiny-whisper"]["state"] == "ready" and m["tiny-ocr"]["state"] == "ready"
    assert "never downloads" in m["base-en"]["error"]
    assert "directory not found: no-such-dir" in m["missing-fw"]["error"]
    assert "directory not found: no-such-model" in m["ocr-no-dir"]["error"]
    assert "bundled" in m["rapid-with-path"]["error"]
    # A FIFO would block open() forever: it is named for what it is, not "not found".
    assert "named pipe (FIFO)" in m["fifo-whisper"]["error"] and m["fifo-whisper"]["attempts"] == 1


def test_server_paths_stay_in_the_log_not_in_responses(server, files) -> None:
    where = str(files["dir"])
    for route in ("/health", "/models"):
        assert where not in server.client.get(route).text
    r = server.client.post("/asr", data={"model": "missing-fw"}, files={"audio": ("s.wav", b"RIFF")})
    assert r.status_code == 503 and "no-such-dir" in r.text and where not in r.text
    assert where in server.log()  # the operator still sees where the server looked


def test_openai_whisper_backend_end_to_end(server, files) -> None:
    r = server.client.post("/asr", files={"audio": ("s.wav", files["wav"].read_bytes())})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == "tiny-whisper"  # first ASR model is the default
    assert body["transcript"] == TINY_WHISPER_TEXT.strip()
    assert body["language"] == "en" and body["segments"]


def test_openai_whisper_through_the_sdk(server, files) -> None:
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
    with files["wav"].open("rb") as fh:
        out = client.audio.transcriptions.create(model="tiny-whisper", file=fh, response_format="verbose_json")
    assert out.text == TINY_WHISPER_TEXT.strip() and out.segments


def test_transformers_ocr_backend_end_to_end(server, files) -> None:
    r = server.client.post("/ocr", files={"image": ("t.png", files["png"].read_bytes())})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == "tiny-ocr"
    assert body["extracted_text"] == TINY_OCR_TEXT
    assert body["lines"] == [{"text": TINY_OCR_TEXT, "confidence": None, "box": None}]


def test_failed_model_is_503_with_reason(server, files) -> None:
    r = server.client.post("/asr", files={"audio": ("s.wav", files["wav"].read_bytes())}, data={"model": "base-en"})
    assert r.status_code == 503 and "never downloads" in r.json()["error"]["message"]


def test_busy_model_overflow_is_429_and_nothing_fails(server, files) -> None:
    wav = files["wav"].read_bytes()

    def one(_: int) -> httpx.Response:
        with httpx.Client(base_url=server.url, timeout=120) as c:
            return c.post("/asr", files={"audio": ("s.wav", wav)})

    with ThreadPoolExecutor(6) as pool:
        responses = list(pool.map(one, range(6)))
    codes = [r.status_code for r in responses]
    assert set(codes) <= {200, 429}, codes
    assert codes.count(200) >= 1 and codes.count(429) >= 1, codes
    refused = next(r for r in responses if r.status_code == 429)
    # Retry-After is the queue ahead times the model's mean call time (whole seconds, at least 1): on a
    # loaded machine a call takes longer, so the number is not fixed; the message states the same one.
    retry_after = int(refused.headers["Retry-After"])
    message = refused.json()["error"]["message"]
    assert retry_after >= 1 and "busy" in message and f"retry in about {retry_after} s" in message, message
