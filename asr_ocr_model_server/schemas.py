"""Response models of the ASR/OCR server (requests are multipart forms, declared on the routes)."""

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


class LineOut(BaseModel):
    text: str
    confidence: float | None = Field(description="0..1; null when the backend gives none")
    box: list[list[float]] | None = Field(description="four [x, y] corners; null when the backend gives none")


class OcrResponse(BaseModel):
    success: bool = True
    model: str
    extracted_text: str
    lines: list[LineOut]


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
