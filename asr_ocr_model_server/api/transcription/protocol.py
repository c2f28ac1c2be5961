"""Response models of ``/asr`` and ``/v1/audio/transcriptions`` (requests are multipart forms,
declared on the routes)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class WordOut(BaseModel):
    word: str
    start: float
    end: float


class AsrWord(WordOut):
    probability: float = Field(description="the model's confidence in the word, 0..1")


class SegmentOut(BaseModel):
    start: float
    end: float
    text: str
    words: list[AsrWord] | None = Field(default=None, description="with word_timestamps=true; else null")


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


class DurationUsage(BaseModel):
    type: Literal["duration"] = "duration"
    seconds: float


class TranscriptionVerbose(BaseModel):
    """OpenAI ``response_format=verbose_json`` (transcriptions and translations)."""

    task: Literal["transcribe", "translate"] = "transcribe"
    language: str
    duration: float
    text: str
    segments: list[VerboseSegment] | None = Field(
        default=None, description="unless timestamp_granularities names only 'word'")
    words: list[WordOut] | None = Field(default=None, description="when timestamp_granularities names 'word'")
    usage: DurationUsage


class TokenDetails(BaseModel):
    audio_tokens: int
    text_tokens: int = 0


class TokenUsage(BaseModel):
    """Whisper's tokens: the encoder's audio positions (50 per second of audio) in, text tokens out."""

    type: Literal["tokens"] = "tokens"
    input_tokens: int
    output_tokens: int
    total_tokens: int
    input_token_details: TokenDetails


class TranscriptTextDelta(BaseModel):
    """``stream=true``: one per decoded segment (the first one's text, then a space and the next's …)."""

    type: Literal["transcript.text.delta"] = "transcript.text.delta"
    delta: str


class TranscriptTextDone(BaseModel):
    """``stream=true``: the last event, with the whole text (the deltas joined)."""

    type: Literal["transcript.text.done"] = "transcript.text.done"
    text: str
    usage: TokenUsage
