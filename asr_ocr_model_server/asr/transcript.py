"""What every ASR backend returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

SAMPLE_RATE = 16_000


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


@dataclass
class Transcript:
    text: str
    language: str | None
    duration: float
    segments: list[Segment]


@runtime_checkable
class AsrModel(Protocol):
    def transcribe(self, audio: np.ndarray, *, language: str | None, prompt: str | None,
                   temperature: float | None) -> Transcript: ...

    def warmup(self) -> None: ...

    @property
    def multilingual(self) -> bool:
        """False for an English-only model (``tiny.en``): it cannot transcribe another language."""
        ...


def check_language(model: AsrModel, language: str | None) -> None:
    """400 for a language an English-only model cannot transcribe (it would silently give English)."""
    if language and language.lower() != "en" and not model.multilingual:
        from serving_core.errors import BadRequest

        raise BadRequest(f"language '{language}' is not supported by this model, which is English-only; send "
                         "'en' or no language, or choose a multilingual model", param="language")


def silence(seconds: float = 1.0) -> np.ndarray:
    """Float32 16 kHz silence, for warmup."""
    return np.zeros(int(SAMPLE_RATE * seconds), dtype=np.float32)
