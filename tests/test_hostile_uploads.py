"""Upload bombs against the real ASR/OCR server on its embedded models: small files that decode to
huge audio or images are refused before they cost memory, and big legal images leave no residue."""

from __future__ import annotations

import io
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image, ImageDraw

from conftest import assert_error
from media import speak_wav, varied_sentences, wav_bytes

pytestmark = pytest.mark.slow

MB = 1024 * 1024


def _wav(rate: int, seconds: float) -> bytes:
    return wav_bytes(np.zeros(int(rate * seconds)), rate)


def _png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return buf.getvalue()


def _rss(srv) -> int:
    status = Path(f"/proc/{srv.proc.pid}/status").read_text()
    return int(next(ln for ln in status.splitlines() if ln.startswith("VmRSS:")).split()[1]) * 1024


@pytest.fixture(scope="module")
def server(module_server):
    srv = module_server("asr_ocr_model_server", env={"ASR_OCR_MAX_AUDIO_SECONDS": "60"})
    body = srv.wait_settled(timeout=180)
    assert body["status"] == "healthy", body
    return srv


def test_a_wav_declaring_1_hz_is_refused_before_resampling(server) -> None:
    bomb = _wav(1, 3610)  # 7,264 bytes that would resample to one hour (+3 GB) of audio
    assert len(bomb) < 8000
    before = _rss(server)
    message = assert_error(server.client.post("/asr", files={"audio": ("bomb.wav", bomb)}), 422)
    assert "1 Hz" in message
    assert _rss(server) - before < 50 * MB


def test_audio_longer_than_the_limit_gets_413_naming_it(server) -> None:
    long = _wav(8000, 75)  # 75 s at 8 kHz, 1.2 MB: above this server's 60 s limit
    message = assert_error(server.client.post("/asr", files={"audio": ("long.wav", long)}), 413)
    assert "max_audio_seconds" in message and "60" in message
    # The OpenAI route applies the same limit.
    assert_error(server.client.post("/v1/audio/transcriptions", files={"file": ("long.wav", long)}), 413)
    # A plausible low rate within the limit is fine.
    r = server.client.post("/asr", files={"audio": ("ok.wav", _wav(8000, 2))})
    assert r.status_code == 200, r.text


def test_undecodable_audio_says_why_without_object_reprs(server) -> None:
    junk = b"RIFF\x00\x00\x00\x00WAVE" + b"garbage" * 10
    message = assert_error(server.client.post("/asr", files={"audio": ("junk.wav", junk)}), 422)
    assert "could not decode" in message and "object at 0x" not in message and "None" not in message


@pytest.mark.parametrize(("size", "reason"), [((1, 39_000_000), "at least 8 pixels"),
                                              ((20, 30_000), "aspect ratio"),
                                              ((30_000, 20), "aspect ratio")],
                         ids=["1x39M", "tall", "wide"])
def test_degenerate_image_shapes_get_422(server, size, reason) -> None:
    data = _png(Image.new("L", size, 255))
    assert len(data) < 200_000
    before = _rss(server)
    message = assert_error(server.client.post("/ocr", files={"image": ("x.png", data)}), 422)
    assert reason in message and f"{size[0]}x{size[1]}" in message
    assert _rss(server) - before < 50 * MB


def test_a_burst_of_large_legal_images_leaves_no_memory_behind(server) -> None:
    big = Image.new("RGB", (6300, 6300), "white")  # 39.7 M pixels: under the 40 M limit
    ImageDraw.Draw(big).text((100, 100), "Hello world", fill="black")
    data = _png(big)
    del big
    assert len(data) < 200_000
    first = server.client.post("/ocr", files={"image": ("big.png", data)})  # warm: allocator and ONNX arenas
    assert first.status_code == 200, first.text
    baseline = _rss(server)

    def one(_: int) -> int:
        return httpx.post(f"{server.url}/ocr", files={"image": ("big.png", data)}, timeout=300).status_code

    with ThreadPoolExecutor(6) as pool:
        assert list(pool.map(one, range(6))) == [200] * 6
    assert _rss(server) - baseline < 100 * MB


def test_a_wrong_file_is_refused_at_once_not_after_the_queue(server, tmp_path) -> None:
    # ~50 s of speech (under this server's 60 s limit): several seconds of transcription.
    long_speech = speak_wav(varied_sentences(15), tmp_path / "long.wav").read_bytes()
    with ThreadPoolExecutor(1) as pool:
        busy = pool.submit(httpx.post, f"{server.url}/asr", files={"audio": ("long.wav", long_speech)}, timeout=300)
        time.sleep(1.5)  # the 3 MB upload is in and transcribing (which takes many seconds)
        r = server.client.post("/asr", files={"audio": ("notes.txt", b"just some text, not audio\n")})
        still_busy = not busy.done()
        assert_error(r, 415)
        assert still_busy  # answered while the model was still transcribing the long file
        assert busy.result().status_code == 200
