"""Checks for the test-media helpers (tests/media.py) and the tiny ASR / OCR model builders."""

from __future__ import annotations

import os
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from media import (
    AUDIO_FORMATS,
    IMAGE_FORMATS,
    IMAGE_MODES,
    audio_format_supported,
    char_error_rate,
    convert_audio,
    decode_audio,
    normalize_words,
    read_wav_float32,
    render_text_image,
    speak_wav,
    stored_image_mode,
    word_error_rate,
)
from tiny_asr_ocr_models import (
    TINY_OCR_TEXT,
    TINY_WHISPER_TEXT,
    write_tiny_openai_whisper,
    write_tiny_vision_ocr,
)

os.environ.setdefault("HF_HUB_OFFLINE", "1")

SENTENCE = "Hello world, this is a test."


@pytest.fixture(scope="module")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="module")
def speech_wav(media_dir: Path) -> Path:
    return speak_wav(SENTENCE, media_dir / "speech.wav")


# ---------------------------------------------------------------- scoring


def test_normalize_words() -> None:
    assert normalize_words("Hello, World! It's  a TEST.") == ["hello", "world", "it's", "a", "test"]


def test_word_error_rate() -> None:
    assert word_error_rate("the cat sat down", "The cat sat down.") == 0.0
    assert word_error_rate("the cat sat down", "the dog sat down") == 0.25
    assert word_error_rate("the cat sat down", "the cat sat") == 0.25
    assert word_error_rate("the cat sat down", "the cat sat right down") == 0.25
    assert word_error_rate("a b", "") == 1.0
    assert word_error_rate("", "") == 0.0


def test_char_error_rate() -> None:
    assert char_error_rate("Hello  World", "hello world") == 0.0
    assert char_error_rate("abcd", "abxd") == 0.25
    assert char_error_rate("abcd", "abc") == 0.25


# ---------------------------------------------------------------- audio


def test_speak_wav(speech_wav: Path) -> None:
    info = sf.info(str(speech_wav))
    assert (info.samplerate, info.channels, info.subtype, info.format) == (16000, 1, "PCM_16", "WAV")
    assert 1.0 < info.duration < 5.0
    samples = read_wav_float32(speech_wav)
    assert samples.dtype == np.float32
    assert np.abs(samples).max() > 0.05


@pytest.mark.parametrize("fmt", AUDIO_FORMATS)
def test_convert_audio(fmt: str, speech_wav: Path, media_dir: Path) -> None:
    # The server accepts every one of these formats, so its tests need each one encodable here.
    assert audio_format_supported(fmt), f"this PyAV build has no encoder for {fmt}"
    out = convert_audio(speech_wav, media_dir / f"speech.{fmt}", fmt)
    with av.open(str(out)) as container:
        assert container.streams.audio, f"{fmt}: no audio stream"
    samples, rate = decode_audio(out)
    expected = sf.info(str(speech_wav)).duration
    assert abs(len(samples) / rate - expected) < 0.1
    assert np.abs(samples).max() > 0.05
    if fmt == "flac":  # lossless: bit-exact round trip
        np.testing.assert_allclose(samples, read_wav_float32(speech_wav), atol=1e-6)


def test_convert_audio_rejects_unknown_format(speech_wav: Path, media_dir: Path) -> None:
    with pytest.raises(ValueError, match="unknown audio format"):
        convert_audio(speech_wav, media_dir / "speech.xyz", "xyz")


# ---------------------------------------------------------------- images


@pytest.mark.parametrize("mode", IMAGE_MODES)
@pytest.mark.parametrize("fmt", IMAGE_FORMATS)
def test_render_text_image(fmt: str, mode: str, media_dir: Path) -> None:
    path = media_dir / f"text-{mode}.{fmt.lower()}"
    if fmt == "JPEG" and mode == "P":
        with pytest.raises(ValueError, match="palette"):
            render_text_image(["Invoice 12345"], path, fmt, mode)
        return
    render_text_image(["Invoice 12345", "Total: 99.50 EUR"], path, fmt, mode, font_size=32)
    with Image.open(path) as img:
        assert img.format == fmt
        assert img.mode == stored_image_mode(fmt, mode)
        w, h = img.size
        assert w > 200 and h > 2 * 32
        grey = np.asarray(img.convert("L"))
    assert grey[0, 0] > 200  # white margin
    assert grey.min() < 60  # black text


# ---------------------------------------------------------------- tiny models


def test_tiny_openai_whisper(tmp_path: Path, speech_wav: Path) -> None:
    import whisper

    ckpt = write_tiny_openai_whisper(tmp_path / "tiny-whisper.pt")
    assert ckpt.stat().st_size < 5_000_000
    model = whisper.load_model(str(ckpt), device="cpu")
    result = whisper.transcribe(model, read_wav_float32(speech_wav), fp16=False)
    assert isinstance(result["text"], str)
    assert isinstance(result["segments"], list) and result["segments"]
    assert result["text"].strip() == TINY_WHISPER_TEXT.strip()


def test_tiny_vision_ocr(tmp_path: Path, media_dir: Path) -> None:
    from transformers import AutoModelForImageTextToText, AutoProcessor

    directory = write_tiny_vision_ocr(tmp_path / "tiny-ocr")
    model = AutoModelForImageTextToText.from_pretrained(directory)
    processor = AutoProcessor.from_pretrained(directory)
    image = Image.open(render_text_image(["Hello OCR"], media_dir / "ocr.png")).convert("RGB")
    ids = model.generate(**processor(images=image, return_tensors="pt"), max_new_tokens=8)
    texts = processor.batch_decode(ids, skip_special_tokens=True)
    assert isinstance(texts[0], str)
    assert texts == [TINY_OCR_TEXT]
