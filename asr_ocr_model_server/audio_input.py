"""Uploaded audio: check what the bytes are (not what the client says), decode to 16 kHz mono float32."""

from __future__ import annotations

from typing import BinaryIO

import numpy as np

from asr_ocr_model_server.asr.transcript import SAMPLE_RATE
from asr_ocr_model_server.upload_sniffing import identify
from serving_core.errors import UnprocessableInput

ACCEPTED = "WAV, MP3, FLAC, OGG, M4A or WebM"


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


def decode_audio(file: BinaryIO, filename: str | None = None) -> np.ndarray:
    """Decode any accepted format in-process with PyAV (no ffmpeg binary needed)."""
    kind = identify(file, sniff_audio, "audio", ACCEPTED, filename)
    import av

    try:
        with av.open(file, mode="r") as container:
            if not container.streams.audio:
                raise UnprocessableInput(f"the {kind} file has no audio stream")
            stream = container.streams.audio[0]
            resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
            chunks: list[np.ndarray] = []
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1))
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1))
    except UnprocessableInput:
        raise
    except (av.FFmpegError, ValueError, IndexError, EOFError) as exc:
        raise UnprocessableInput(f"could not decode the {kind} audio: {exc}") from None
    audio = np.concatenate(chunks).astype(np.float32, copy=False) if chunks else np.zeros(0, np.float32)
    if audio.size == 0:
        raise UnprocessableInput(f"the {kind} file decoded to no audio samples")
    return audio
