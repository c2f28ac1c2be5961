"""Uploaded audio: check what the bytes are (not what the client says), decode to 16 kHz mono float32."""

from __future__ import annotations

import mmap
from collections.abc import Callable
from typing import BinaryIO

import numpy as np

from asr_ocr_model_server.asr.transcript import SAMPLE_RATE, WINDOW_SECONDS
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


def _mapped_floats(count: int) -> np.ndarray:
    """``count`` float32 zeros in a private anonymous mapping of their own (see ``release_samples``).

    Private: Python's default for anonymous maps is shared (shmem), whose pages ``MADV_DONTNEED``
    only unmaps; they stay allocated, and the cgroup still counts them."""
    return np.frombuffer(mmap.mmap(-1, max(1, count) * 4, flags=mmap.MAP_PRIVATE), dtype=np.float32)


class _Samples:
    """The decoded 16 kHz samples, written into one buffer as they come.

    Collecting frames in a list and concatenating them held the audio twice at the end (+2 × 106 MB
    for 29 min). The buffer is sized from the header's duration (else from ``max_seconds``): pages
    never written are never resident, so a generous size costs address space, not memory. A header
    that understates the length makes it grow once, to the most ``max_seconds`` allows.
    """

    SLACK_SECONDS = 1.0  # the resampler's delay and the last frame's rounding

    def __init__(self, max_seconds: float, declared_seconds: float | None) -> None:
        self.limit = self._count(max_seconds)
        seconds = max_seconds if declared_seconds is None else min(declared_seconds, max_seconds)
        self.buffer = _mapped_floats(min(self._count(seconds), self.limit))
        self.size = 0

    @classmethod
    def _count(cls, seconds: float) -> int:
        return int((seconds + cls.SLACK_SECONDS) * SAMPLE_RATE)

    def append(self, chunk: np.ndarray) -> None:
        end = self.size + chunk.size
        if end > self.buffer.size:
            grown = _mapped_floats(max(end, self.limit))
            grown[:self.size] = self.buffer[:self.size]
            self.buffer = grown
        self.buffer[self.size:end] = chunk
        self.size = end

    def audio(self) -> np.ndarray:
        return self.buffer[:self.size]


def release_samples(audio: np.ndarray) -> bool:
    """Hand the memory of audio from ``decode_audio`` back to the OS now; it reads as zeros after.

    A model calls this once it holds what it needs (faster-whisper: the log-mel features, computed
    before the first segment): for 29 min that is 106 MB less for the whole transcription, while
    the callers' references to the array stay valid. Any other array is left alone (False).
    """
    base: object = audio
    while isinstance(base, np.ndarray):
        base = base.base
    if isinstance(base, memoryview):  # np.frombuffer's base
        base = base.obj
    advice = getattr(mmap, "MADV_DONTNEED", None)
    if not isinstance(base, mmap.mmap) or advice is None:
        return False
    base.madvise(advice)
    return True


def check_audio(file: BinaryIO, filename: str | None = None) -> None:
    """The cheap checks (what the bytes are), for a refusal before the request queues for its model."""
    identify(file, sniff_audio, "audio", ACCEPTED, filename)


def decode_audio(file: BinaryIO, filename: str | None = None, max_seconds: float = 1800.0,
                 on_long: Callable[[], None] | None = None, long_seconds: float = WINDOW_SECONDS) -> np.ndarray:
    """Decode any accepted format in-process with PyAV (no ffmpeg binary needed) to 16 kHz mono.

    The length is checked against ``max_seconds`` from the container's header and again as the
    frames decode, *before* they are resampled, so a small file that declares hours of audio costs
    nothing; sample rates outside the plausible range are refused before any decoding.

    The samples are decoded into one buffer (no list of chunks joined at the end) that the model
    may hand back to the OS once it has its features (``release_samples``): read them before the
    model call, not after.

    ``on_long`` is called once, before more than ``long_seconds`` of samples exist, as soon as the
    audio is known to be longer: by its header, for want of a header duration, or by its frames
    (a header can understate). It may block (a long file waits for its turn before its samples
    take memory).
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
            declared = container.duration / av.time_base if container.duration is not None else None
            long = on_long is not None and (declared is None or declared > long_seconds)
            if long and on_long is not None:
                on_long()
            samples = _Samples(max_seconds, declared)
            resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
            seconds = 0.0
            for frame in container.decode(stream):
                _check_rate(frame.sample_rate, kind)
                seconds += frame.samples / frame.sample_rate
                if seconds > max_seconds:
                    raise _too_long(seconds, max_seconds)
                if not long and on_long is not None and seconds > long_seconds:
                    long = True
                    on_long()
                for out in resampler.resample(frame):
                    samples.append(out.to_ndarray().reshape(-1))
            for out in resampler.resample(None):
                samples.append(out.to_ndarray().reshape(-1))
    except (UnprocessableInput, PayloadTooLarge):
        raise
    except av.FFmpegError as exc:
        # str(exc) quotes the "file name", which for an upload is an object repr: use the reason only.
        raise UnprocessableInput(f"could not decode the {kind} audio: {exc.strerror or 'invalid data'}") from None
    except (ValueError, IndexError, EOFError) as exc:
        raise UnprocessableInput(f"could not decode the {kind} audio: {exc}") from None
    audio = samples.audio()
    if audio.size == 0:
        raise UnprocessableInput(f"the {kind} file decoded to no audio samples")
    return audio
