"""Uploaded audio: check what the bytes are (not what the client says), decode to 16 kHz mono float32."""

from __future__ import annotations

from typing import BinaryIO

import numpy as np

from asr_ocr_model_server.asr.transcript import SAMPLE_RATE
from asr_ocr_model_server.upload_sniffing import identify
from serving_core.errors import PayloadTooLarge, UnprocessableInput

ACCEPTED = "WAV, MP3, FLAC, OGG, M4A or WebM"
# Real recordings lie well inside this range; outside it a file is either broken or built to make
# resampling explode (a 1 Hz WAV becomes 16,000 samples per stored sample).
MIN_SAMPLE_RATE = 2_000
MAX_SAMPLE_RATE = 768_000


def sniff_audio(head: bytes) -> str | None:
    """The container format the first bytes show, or None."""
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "wav"
    if head[:4] == b"fLaC":
        return "flac"
    if head[:4] == b"OggS":
        return "ogg"
    if head[4:8] == b"ftyp":
        return "m4a"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "webm"
    if head[:3] == b"ID3" or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
        return "mp3"
    return None


def _check_rate(rate: int | None, kind: str) -> None:
    if rate is not None and not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise UnprocessableInput(
            f"the {kind} file declares a sample rate of {rate} Hz; accepted: {MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE} Hz"
        )


def _too_long(seconds: float, max_seconds: float) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"the audio is longer than the limit of {max_seconds:g} s (max_audio_seconds; at least {seconds:.0f} s "
        "found); split it into shorter files"
    )


def check_audio(file: BinaryIO, filename: str | None = None) -> None:
    """The cheap checks (what the bytes are), for a refusal before the request queues for its model."""
    identify(file, sniff_audio, "audio", ACCEPTED, filename)


def decode_audio(file: BinaryIO, filename: str | None = None, max_seconds: float = 1800.0) -> np.ndarray:
    """Decode any accepted format in-process with PyAV (no ffmpeg binary needed) to 16 kHz mono.

    The length is checked against ``max_seconds`` from the container's header and again as the
    frames decode, *before* they are resampled, so a small file that declares hours of audio costs
    nothing; sample rates outside the plausible range are refused before any decoding.
    """
    kind = identify(file, sniff_audio, "audio", ACCEPTED, filename)
    import av

    try:
        with av.open(file, mode="r") as container:
            if not container.streams.audio:
                raise UnprocessableInput(f"the {kind} file has no audio stream")
            stream = container.streams.audio[0]
            _check_rate(stream.codec_context.sample_rate or None, kind)
            if container.duration is not None and container.duration / av.time_base > max_seconds:
                raise _too_long(container.duration / av.time_base, max_seconds)
            resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
            chunks: list[np.ndarray] = []
            seconds = 0.0
            for frame in container.decode(stream):
                _check_rate(frame.sample_rate, kind)
                seconds += frame.samples / frame.sample_rate
                if seconds > max_seconds:
                    raise _too_long(seconds, max_seconds)
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1))
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1))
    except (UnprocessableInput, PayloadTooLarge):
        raise
    except av.FFmpegError as exc:
        # str(exc) quotes the "file name", which for an upload is an object repr: use the reason only.
        raise UnprocessableInput(f"could not decode the {kind} audio: {exc.strerror or 'invalid data'}") from None
    except (ValueError, IndexError, EOFError) as exc:
        raise UnprocessableInput(f"could not decode the {kind} audio: {exc}") from None
    audio = np.concatenate(chunks).astype(np.float32, copy=False) if chunks else np.zeros(0, np.float32)
    if audio.size == 0:
        raise UnprocessableInput(f"the {kind} file decoded to no audio samples")
    return audio
