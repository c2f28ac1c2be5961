"""The ASR/OCR server on its embedded defaults: real speech and real text through HTTP, and bad input."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import openai
import pytest

from conftest import assert_error
from media import AUDIO_FORMATS, char_error_rate, convert_audio, render_text_image, speak_wav, word_error_rate
from server_process import REPO

pytestmark = pytest.mark.slow

SENTENCE = "Please send the report to the office before noon on Friday. The weather today is sunny."
TEXT_LINES = ["Invoice number 4021", "Total due: 318 euros"]


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("media")
    wav = speak_wav(SENTENCE, d / "speech.wav")
    files = {"wav": wav, "png": render_text_image(TEXT_LINES, d / "text.png")}
    for fmt in AUDIO_FORMATS:
        files[fmt] = convert_audio(wav, d / f"speech.{fmt}", fmt)
    return files


@pytest.fixture(scope="module")
def server_tmp(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("server-tmp")


@pytest.fixture(scope="module")
def startup(module_server, server_tmp):
    # early_start off: the "loading" window is then the whole load on any machine (see the Gemma test).
    srv = module_server("asr_ocr_model_server", env={"TMPDIR": str(server_tmp), "ASR_OCR_EARLY_START": "false"})
    srv.wait_live(timeout=120)
    first = srv.client.get("/health")
    settled = srv.wait_settled(timeout=180)
    srv.tmp_before = sorted(server_tmp.iterdir())  # files libraries made at start are not ours
    return srv, first, settled


@pytest.fixture(scope="module")
def server(startup):
    return startup[0]




def test_health_goes_from_loading_to_healthy_with_both_models(startup) -> None:
    srv, first, settled = startup
    assert first.status_code == 503 and first.json()["status"] == "loading"
    assert settled["status"] == "healthy"
    models = srv.client.get("/health").json()["models"]
    assert set(models) == {"whisper-tiny.en", "rapidocr"}
    assert all(m["state"] == "ready" and m["load_seconds"] > 0 for m in models.values())


def test_default_models_loaded_concurrently(server) -> None:
    models = server.client.get("/health").json()["models"].values()
    spans = [(m["since"] - m["load_seconds"], m["since"]) for m in models]
    assert max(s for s, _ in spans) < min(e for _, e in spans), f"loads did not overlap: {spans}"
    assert "Using parallel model loading (2 workers for 2 models)" in server.log()


def test_asr_transcribes_speech(server, media) -> None:
    r = server.client.post("/asr", files={"audio": ("speech.wav", media["wav"].read_bytes(), "audio/wav")})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["success"] is True and body["language"] == "en"
    assert word_error_rate(SENTENCE, body["transcript"]) <= 0.25, body["transcript"]
    assert 3 < body["duration"] < 15
    assert body["segments"] and all(s["end"] >= s["start"] for s in body["segments"])


def test_metrics_count_audio_seconds_and_images(server, media) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    def sample(name: str, model: str) -> float:
        text = server.client.get("/metrics").text
        return next((s.value for f in text_string_to_metric_families(text) for s in f.samples
                     if s.name == name and s.labels.get("model") == model), 0.0)

    audio_before = sample("asr_ocr_audio_seconds_total", "whisper-tiny.en")
    images_before = sample("asr_ocr_images_total", "rapidocr")
    r = server.client.post("/asr", files={"audio": ("speech.wav", media["wav"].read_bytes(), "audio/wav")})
    assert r.status_code == 200, r.text
    assert abs(sample("asr_ocr_audio_seconds_total", "whisper-tiny.en") - audio_before - r.json()["duration"]) < 0.01
    r = server.client.post("/ocr", files={"image": ("text.png", media["png"].read_bytes(), "image/png")})
    assert r.status_code == 200, r.text
    assert sample("asr_ocr_images_total", "rapidocr") == images_before + 1


@pytest.mark.parametrize("fmt", AUDIO_FORMATS)
def test_asr_decodes_each_container(server, media, fmt) -> None:
    # A wrong declared type on purpose: the server looks at the bytes.
    upload = (f"speech.{fmt}", media[fmt].read_bytes(), "application/octet-stream")
    r = server.client.post("/asr", files={"audio": upload})
    assert r.status_code == 200, r.text
    assert word_error_rate(SENTENCE, r.json()["transcript"]) <= 0.35, r.json()["transcript"]


def test_ocr_reads_text(server, media) -> None:
    r = server.client.post("/ocr", files={"image": ("text.png", media["png"].read_bytes(), "image/png")})
    assert r.status_code == 200, r.text
    body = r.json()
    assert char_error_rate("\n".join(TEXT_LINES), body["extracted_text"]) <= 0.1, body["extracted_text"]
    assert len(body["lines"]) == 2
    for line in body["lines"]:
        assert 0 < line["confidence"] <= 1 and len(line["box"]) == 4


@pytest.mark.parametrize("fmt, mode", [("JPEG", "RGB"), ("WEBP", "RGB"), ("TIFF", "RGB"), ("BMP", "RGB"),
                                       ("PNG", "P"), ("PNG", "L")])
def test_ocr_image_formats_and_modes(server, tmp_path, fmt, mode) -> None:
    path = render_text_image(TEXT_LINES, tmp_path / f"t.{fmt.lower()}", fmt=fmt, mode=mode)
    r = server.client.post("/ocr", files={"image": (path.name, path.read_bytes(), "image/whatever")})
    assert r.status_code == 200, r.text
    assert char_error_rate("\n".join(TEXT_LINES), r.json()["extracted_text"]) <= 0.15, r.json()["extracted_text"]


@pytest.mark.parametrize("fmt", ["json", "text", "srt", "vtt", "verbose_json"])
def test_openai_sdk_transcriptions_each_format(server, media, fmt) -> None:
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
    with media["wav"].open("rb") as fh:
        out = client.audio.transcriptions.create(model="whisper-1", file=fh, response_format=fmt, language="en")
    if fmt == "json":
        text = out.text
    elif fmt == "verbose_json":
        text = out.text
        assert out.language == "en" and out.duration > 3 and out.segments
        assert out.segments[0].end > out.segments[0].start
    else:
        assert isinstance(out, str)
        text = out
        if fmt == "srt":
            assert "00:00:00,000 --> " in out and out.startswith("1\n")
        if fmt == "vtt":
            assert out.startswith("WEBVTT") and "00:00:00.000 --> " in out
    assert word_error_rate(SENTENCE, text.replace("WEBVTT", "")) <= 0.6 if fmt in ("srt", "vtt") else True
    assert any(w in text.lower() for w in ("report", "office", "weather"))


def test_openai_sdk_with_the_configured_model_name(server, media) -> None:
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
    with media["wav"].open("rb") as fh:
        out = client.audio.transcriptions.create(model="whisper-tiny.en", file=fh)
    assert word_error_rate(SENTENCE, out.text) <= 0.25


# --- bad input ----------------------------------------------------------------------------------


def _tiny_png_header(width: int, height: int) -> bytes:
    """A valid PNG of the given size in 1-bit grey: a few KB that decode to width*height pixels."""
    raw = b"".join(b"\x00" + b"\x00" * ((width + 7) // 8) for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


def test_not_audio_is_415(server) -> None:
    r = server.client.post("/asr", files={"audio": ("notes.wav", b"just some text, honest" * 10, "audio/wav")})
    assert "not a supported audio file" in assert_error(r, 415)


def test_image_sent_as_audio_is_415(server, media) -> None:
    assert_error(server.client.post("/asr", files={"audio": ("x.wav", media["png"].read_bytes(), "audio/wav")}), 415)


def test_corrupt_audio_is_422(server) -> None:
    body = b"RIFF\x24\x00\x00\x00WAVEfmt " + os.urandom(2000)
    assert "could not decode" in assert_error(server.client.post("/asr", files={"audio": ("bad.wav", body)}), 422)


def test_empty_upload_is_422(server) -> None:
    assert "empty" in assert_error(server.client.post("/asr", files={"audio": ("e.wav", b"")}), 422)
    assert "empty" in assert_error(server.client.post("/ocr", files={"image": ("e.png", b"")}), 422)


def test_missing_field_is_422_naming_it(server, media) -> None:
    assert "audio" in assert_error(server.client.post("/asr", files={"file": ("s.wav", b"x")}), 422)
    assert "image" in assert_error(server.client.post("/ocr", data={"model": "rapidocr"}), 422)


def test_a_broken_pdf_is_422_and_a_pdf_sent_as_audio_is_415(server) -> None:
    broken = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n" * 5
    assert "could not read the document" in assert_error(
        server.client.post("/ocr", files={"image": ("scan.pdf", broken)}), 422)
    message = assert_error(server.client.post("/asr", files={"audio": ("scan.pdf", broken)}), 415)
    assert "PDF" in message and "/ocr" in message


def test_another_language_on_an_english_only_model_is_400(server, media) -> None:
    # tiny.en would transcribe French speech as English without a word; say so instead.
    r = server.client.post("/asr", files={"audio": ("s.wav", media["wav"].read_bytes())}, data={"language": "fr"})
    assert "English-only" in assert_error(r, 400)
    assert r.json()["error"]["param"] == "language"
    r = server.client.post("/asr", files={"audio": ("s.wav", media["wav"].read_bytes())}, data={"language": "en"})
    assert r.status_code == 200, r.text


def test_bad_language_is_422(server, media) -> None:
    r = server.client.post("/asr", files={"audio": ("s.wav", media["wav"].read_bytes())}, data={"language": "English"})
    assert "language" in assert_error(r, 422)


def test_bad_response_format_is_422(server, media) -> None:
    r = server.client.post("/v1/audio/transcriptions", files={"file": ("s.wav", media["wav"].read_bytes())},
                           data={"model": "whisper-1", "response_format": "docx"})
    assert "response_format" in assert_error(r, 422)


def test_not_an_image_is_415(server, media) -> None:
    assert "not a supported image" in assert_error(
        server.client.post("/ocr", files={"image": ("speech.png", media["wav"].read_bytes(), "image/png")}), 415)


def test_truncated_image_is_422(server, media) -> None:
    data = media["png"].read_bytes()
    r = server.client.post("/ocr", files={"image": ("cut.png", data[: len(data) // 2], "image/png")})
    assert "could not decode" in assert_error(r, 422)


def test_decompression_bomb_is_413(server) -> None:
    bomb = _tiny_png_header(10_000, 10_000)  # 100 Mpx in ~15 KB
    assert len(bomb) < 100_000
    r = server.client.post("/ocr", files={"image": ("bomb.png", bomb, "image/png")})
    assert "pixels" in assert_error(r, 413)


def test_upload_over_the_cap_is_413(server) -> None:
    big = b"RIFF" + b"\x00" * (26 * 1024 * 1024)
    r = server.client.post("/asr", files={"audio": ("big.wav", big)})
    assert "limit" in assert_error(r, 413)


def test_chunked_upload_over_the_cap_is_413(server) -> None:
    boundary = "b0undary"

    def body():
        yield f'--{boundary}\r\nContent-Disposition: form-data; name="audio"; filename="a.wav"\r\n\r\n'.encode()
        chunk = b"\x00" * (1024 * 1024)
        for _ in range(30):
            yield chunk
        yield f"\r\n--{boundary}--\r\n".encode()

    headers = {"content-type": f"multipart/form-data; boundary={boundary}"}
    r = server.client.post("/asr", content=body(), headers=headers)
    assert "limit" in assert_error(r, 413)


def test_unknown_model_and_wrong_task(server, media) -> None:
    wav = media["wav"].read_bytes()
    msg = assert_error(server.client.post("/asr", files={"audio": ("s.wav", wav)}, data={"model": "nope"}), 404)
    assert "whisper-tiny.en" in msg and "rapidocr" in msg
    msg = assert_error(server.client.post("/asr", files={"audio": ("s.wav", wav)}, data={"model": "rapidocr"}), 400)
    assert "/ocr" in msg


def test_no_temporary_files_left_behind(server, server_tmp, media) -> None:
    # Every request above, good or bad, has run by now (module order); add a few more to be sure.
    server.client.post("/asr", files={"audio": ("s.wav", media["wav"].read_bytes())})
    server.client.post("/ocr", files={"image": ("x.png", b"garbage")})
    server.client.post("/asr", files={"audio": ("big.wav", b"RIFF" + b"\x00" * (3 * 1024 * 1024) + b"WAVE")})
    assert sorted(server_tmp.iterdir()) == server.tmp_before


def test_server_still_healthy_after_bad_input(server, media) -> None:
    assert server.client.get("/health").json()["status"] == "healthy"
    r = server.client.post("/ocr", files={"image": ("text.png", media["png"].read_bytes())})
    assert r.status_code == 200


def test_default_backends_never_import_torch_or_transformers() -> None:
    code = (
        "import sys\n"
        "from asr_ocr_model_server.settings import AsrOcrServerSettings\n"
        "from asr_ocr_model_server.backends import make_loader\n"
        "s = AsrOcrServerSettings.load()\n"
        "handles = [make_loader(None)(spec) for spec in s.models]\n"
        "handles[1].read(__import__('PIL.Image', fromlist=['Image']).new('RGB', (64, 32), 'white'))\n"
        "print(sorted(m for m in ('torch', 'transformers', 'whisper') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"




def test_openai_models_list_and_unsupported_transcription_options(server, media) -> None:
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
    assert {m.id for m in client.models.list()} == {"whisper-tiny.en", "rapidocr"}
    wav = media["wav"].read_bytes()
    r = server.client.post("/v1/audio/transcriptions", files={"file": ("s.wav", wav)},
                           data={"timestamp_granularities[]": "word"})
    assert r.status_code == 400 and "verbose_json" in r.json()["error"]["message"]
    r = server.client.post("/v1/audio/transcriptions", files={"file": ("s.wav", wav)},
                           data={"stream": "true", "response_format": "vtt"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "stream"
    r = server.client.post("/v1/audio/transcriptions", files={"file": ("s.wav", wav)},
                           data={"timestamp_granularities[]": "segment"})
    assert r.status_code == 200, r.text


def test_the_readme_example_files_give_their_text(server) -> None:
    """The README's curl lines use examples/speech.wav and examples/text.png: they must work."""
    with (REPO / "examples" / "speech.wav").open("rb") as fh:
        r = server.client.post("/asr", files={"audio": ("speech.wav", fh)})
    assert r.status_code == 200, r.text
    assert word_error_rate("Please send the report to the office before noon on Friday.", r.json()["transcript"]) < 0.2
    with (REPO / "examples" / "text.png").open("rb") as fh:
        r = server.client.post("/ocr", files={"image": ("text.png", fh)})
    assert r.status_code == 200, r.text
    assert char_error_rate("Invoice number 4021\nTotal due: 318 euros", r.json()["extracted_text"]) < 0.1
    with (REPO / "examples" / "pages.pdf").open("rb") as fh:
        r = server.client.post("/ocr", files={"image": ("pages.pdf", fh)}, data={"pages": "1-2"})
    assert r.status_code == 200, r.text
    assert [char_error_rate(text, page["extracted_text"]) < 0.1 for text, page in zip(
        ["Invoice number 4021\nTotal due: 318 euros", "Page two: thank you for your order"], r.json()["pages"],
        strict=True)] == [True, True]
    assert "/asr" in server.client.get("/openapi.json").text and server.client.get("/").json()["docs"] == "/docs"
