"""ASR/OCR server settings: ``ASR_OCR_*`` environment variables,
plus the original servers' ``ASR_OCR_PORT`` and ``MODEL_DIR``."""

from __future__ import annotations

from typing import ClassVar

from pydantic import AliasChoices, BaseModel, Field
from pydantic_settings import SettingsConfigDict

from asr_ocr_model_server.backends import BACKENDS
from serving_core.settings import ServerSettings
from serving_core.specs import ModelSpec

DEFAULT_ASR_NAME = "whisper-tiny.en"
DEFAULT_OCR_NAME = "rapidocr"


class AsrOcrServerSettings(ServerSettings):
    model_config = SettingsConfigDict(
        env_prefix="ASR_OCR_", extra="forbid", env_nested_delimiter="__", populate_by_name=True
    )

    default_port: ClassVar[int] = 8002
    default_max_request_bytes: ClassVar[int] = 25 * 1024 * 1024  # the original servers' upload limit
    backend_options: ClassVar[dict[str, type[BaseModel]]] = {n: b.options for n, b in BACKENDS.items()}

    port: int = Field(default=0, ge=0, le=65535, validation_alias=AliasChoices("ASR_OCR_PORT"),
                      description="0 means 8002")
    model_dir: str | None = Field(default=None, validation_alias=AliasChoices("ASR_OCR_MODEL_DIR", "MODEL_DIR"),
                                  description="base directory for relative model paths")
    max_image_pixels: int = Field(default=40_000_000, ge=1, description="larger images get 413 (decompression bombs)")
    min_image_side: int = Field(default=8, ge=1, description="images narrower or lower than this get 422")
    max_image_aspect_ratio: float = Field(
        default=50.0, ge=1.0, description="images longer than this many times their width (or the reverse) get 422"
    )
    max_document_pages: int = Field(
        default=100, ge=1, description="most pages of a PDF or TIFF read per request; more selected gets 413")
    max_audio_seconds: float = Field(
        default=1800.0, gt=0, description="longer audio gets 413, found before it is resampled (audio bombs)"
    )

    def default_models(self) -> list[ModelSpec]:
        return [ModelSpec(name=DEFAULT_ASR_NAME, backend="faster_whisper"),
                ModelSpec(name=DEFAULT_OCR_NAME, backend="rapidocr")]
