"""Each ASR/OCR backend's ``options:`` (pydantic models), kept apart from the backends so that the
settings can validate every model's options at start without importing numpy, Pillow or a model
library (imports are a large part of cold start)."""

from __future__ import annotations

import os
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class WhisperDecodingOptions(BaseModel):
    """Bounds on decoding that both Whisper backends apply (``asr/decoding.py`` says why)."""

    model_config = ConfigDict(extra="forbid")

    vad_filter: bool | None = Field(
        default=None, description="cut audio to its speech first (Silero VAD); default: for audio longer than 30 s, "
                                   "and audio with no speech at all is not decoded")
    max_tokens_per_second: float = Field(
        default=12.0, ge=1.0, le=50.0, description="most tokens decoded per second of a clip shorter than 30 s")
    temperature_fallback: tuple[float, ...] = Field(
        default=(0.0, 0.4, 0.8), min_length=1, max_length=6,
        description="temperatures a window that decodes badly is tried at in turn (Whisper's own list has six)")

    @field_validator("temperature_fallback")
    @classmethod
    def _rising(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if any(not 0.0 <= t <= 1.0 for t in value) or list(value) != sorted(set(value)):
            raise ValueError("temperatures must rise strictly, each between 0 and 1")
        return value


class FasterWhisperOptions(WhisperDecodingOptions):
    compute_type: str = Field(default="int8", description="int8, int8_float32, float32, …")
    beam_size: int = Field(default=5, ge=1, le=20)
    batch_size: int = Field(default=8, ge=1, le=64,
                            description="windows decoded together: a long file's clips, concurrent requests' windows")
    batch_requests: bool = Field(
        default=True, description="decode the windows of concurrent requests in shared batched calls (up to "
                                  "batch_size); see BENCHMARKS row 18e")
    batch_clip_seconds: float = Field(
        default=30.0, ge=5.0, le=30.0,
        description="longest speech clip of a batch (measured over four 282 s clips: 30 s clips as accurate as "
                    "sequential decoding, +0.2 WER points; 20 s clips +2.9)")
    batch_min_seconds: float | None = Field(
        default=60.0, gt=0, description="audio at least this long is VAD-cut and decoded in batches; null: never")
    language: str | None = Field(default=None, description="default language; None = detect (multilingual models)")
    threads: int | None = Field(default=None, ge=1, le=256,
                                description="CPU threads of each worker; default: the cores shared by the workers")
    workers: int = Field(
        default=1, ge=1, le=16,
        description="transcriptions run at once (CTranslate2 workers), sharing the cores; see BENCHMARKS row 18e")
    task: Literal["transcribe", "translate"] = "transcribe"

    def worker_count(self) -> int:
        # Measured on 2 cores (docs/BENCHMARKS.md row 18e): 2 workers gave 8 concurrent clients 1.13x
        # the audio per second of one worker, but made a lone request ~1.4x slower: one worker is
        # the default, more is for machines that serve many clients at once.
        return self.workers

    def calls_at_once(self) -> int:
        """Transcriptions let into the model at once: one per worker, or a batch's worth per worker
        when they share batched calls."""
        return self.worker_count() * (self.batch_size if self.batch_requests else 1)

    def thread_count(self) -> int:
        return self.threads or max(1, (os.cpu_count() or 1) // self.worker_count())


class OpenAIWhisperOptions(WhisperDecodingOptions):
    language: str | None = None
    beam_size: int | None = Field(default=None, ge=1, le=20, description="None = greedy decoding")
    cache_dir: str | None = Field(default=None, description="where named models are found; default ~/.cache/whisper")
    condition_on_previous_text: bool = True


class RapidOcrOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    threads: int | None = Field(default=None, ge=1, le=256, description="onnxruntime intra-op threads; default all")
    text_score: float = Field(default=0.5, ge=0.0, le=1.0, description="drop lines below this confidence")
    use_cls: bool = Field(default=True, description="detect and fix upside-down text lines")
    limit_type: Literal["max", "min"] = Field(
        default="max", description="'max' shrinks large images and never upscales small ones"
    )
    limit_side_len: int = Field(default=960, ge=32, le=8192)


class TransformersOcrOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompt: str | None = Field(default=None, description="text given with the image (for prompt-driven models)")
    max_new_tokens: int = Field(default=256, ge=1, le=16_384)
    trust_remote_code: bool = Field(default=False, description="run code shipped with the model (dots.ocr needs it)")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        default="float32", description="float32 is the safe choice on CPUs"
    )
    threads: int | None = Field(default=None, ge=1, le=256)
