"""What every ASR backend is asked and returns."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

import numpy as np

SAMPLE_RATE = 16_000
# Whisper hears audio in windows of this many seconds (shorter audio is padded to one).
WINDOW_SECONDS = 30.0

Task = Literal["transcribe", "translate"]


@dataclass(frozen=True)
class Word:
    start: float
    end: float
    word: str
    probability: float = 0.0


@dataclass
class Segment:
    start: float
    end: float
    text: str
    avg_logprob: float = 0.0
    no_speech_prob: float = 0.0
    compression_ratio: float = 0.0
    temperature: float = 0.0
    tokens: list[int] = field(default_factory=list)
    words: list[Word] | None = None  # only when word timestamps were asked for


@dataclass(frozen=True)
class TranscriptionRequest:
    """What one request asks of a speech model, whatever its API."""

    language: str | None = None
    prompt: str | None = None
    temperature: float | None = None  # None: the backend's bounded fallback schedule
    task: Task | None = None  # None: the model's configured task (transcribe by default)
    word_timestamps: bool = False
    # The client reads segments as they come: decode window by window, never in batches that all
    # end together (batched decoding has more throughput, but its first segment comes with its last).
    streamed: bool = False


@dataclass
class SegmentStream:
    """A transcription under way: what is known once the audio's features are computed (language,
    duration), and its segments as they are decoded (a lazy iterator: each step decodes more audio)."""

    language: str | None
    duration: float
    segments: Iterator[Segment]


@dataclass
class Transcript:
    text: str
    language: str | None
    duration: float
    segments: list[Segment]


def join_text(segments: list[Segment]) -> str:
    return " ".join(s.text for s in segments if s.text).strip()


def collect(stream: SegmentStream) -> Transcript:
    """The whole transcript of ``stream`` (decodes it to the end)."""
    segments = list(stream.segments)
    return Transcript(text=join_text(segments), language=stream.language, duration=stream.duration,
                      segments=segments)


@runtime_checkable
class AsrModel(Protocol):
    def stream(self, audio: np.ndarray, request: TranscriptionRequest) -> SegmentStream:
        """Start transcribing ``audio`` (float32, 16 kHz); segments come as they are decoded."""
        ...

    def transcribe(self, audio: np.ndarray, request: TranscriptionRequest) -> Transcript: ...

    def warmup(self) -> None: ...

    @property
    def languages(self) -> frozenset[str]:
        """The language codes the model can transcribe: ``{"en"}`` for an English-only model."""
        ...

    @property
    def multilingual(self) -> bool:
        """False for an English-only model (``tiny.en``): it cannot transcribe another language."""
        ...


def check_request(model: AsrModel, request: TranscriptionRequest) -> None:
    """400 for what the model cannot do: a language it does not know (it would silently transcribe
    as another), translation on an English-only model."""
    from serving_core.errors import BadRequest

    language = request.language.lower() if request.language else None
    if request.task == "translate" and not model.multilingual:
        raise BadRequest("this model is English-only and cannot translate; choose a multilingual Whisper model "
                         "(e.g. whisper-base from the fleet pack)", param="model")
    if language and language not in model.languages:
        if not model.multilingual:
            raise BadRequest(f"language '{request.language}' is not supported by this model, which is English-only; "
                             "send 'en' or no language, or choose a multilingual model", param="language")
        raise BadRequest(f"language '{request.language}' is not one this model knows; send an ISO-639-1 code such "
                         f"as {', '.join(sorted(model.languages)[:8])}, … or no language to detect it",
                         param="language")


def silence(seconds: float = 1.0) -> np.ndarray:
    """Float32 16 kHz silence, for warmup."""
    return np.zeros(int(SAMPLE_RATE * seconds), dtype=np.float32)
