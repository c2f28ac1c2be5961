"""Response models of ``/asr`` and ``/v1/audio/transcriptions`` (requests are multipart forms,
declared on the routes)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class SegmentOut(BaseModel):
    start: float
    end: float
    text: str


class AsrResponse(BaseModel):
    success: bool = True
    model: str
    transcript: str
    language: str | None
    duration: float = Field(description="audio length in seconds")
    segments: list[SegmentOut]


class TranscriptionJson(BaseModel):
    """OpenAI ``response_format=json``."""

    text: str


class VerboseSegment(BaseModel):
    id: int
    seek: int
    start: float
    end: float
    text: str
    tokens: list[int]
    temperature: float
    avg_logprob: float
    compression_ratio: float
    no_speech_prob: float


class TranscriptionVerbose(BaseModel):
    """OpenAI ``response_format=verbose_json``."""

    task: Literal["transcribe"] = "transcribe"
    language: str
    duration: float
    text: str
    segments: list[VerboseSegment]
