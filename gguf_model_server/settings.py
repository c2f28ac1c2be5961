"""GGUF server settings: ``GGUF_*`` environment variables,
plus the original servers' ``MODEL_DIR`` and ``MODEL_SERVER_PORT``."""

from __future__ import annotations

from typing import ClassVar

from pydantic import AliasChoices, BaseModel, Field
from pydantic_settings import SettingsConfigDict

from gguf_model_server.embedded_models import EMBEDDED_MODELS
from gguf_model_server.llama_backend import LLAMA_BACKEND_NAMES, LlamaOptions
from serving_core.settings import ServerSettings
from serving_core.specs import ModelSpec


class GGUFServerSettings(ServerSettings):
    model_config = SettingsConfigDict(
        env_prefix="GGUF_", extra="forbid", env_nested_delimiter="__", populate_by_name=True
    )

    default_port: ClassVar[int] = 8001
    backend_options: ClassVar[dict[str, type[BaseModel]]] = dict.fromkeys(LLAMA_BACKEND_NAMES, LlamaOptions)

    port: int = Field(
        default=0, ge=0, le=65535, validation_alias=AliasChoices("GGUF_PORT", "MODEL_SERVER_PORT"),
        description="0 means 8001",
    )
    model_dir: str | None = Field(
        default=None, validation_alias=AliasChoices("GGUF_MODEL_DIR", "MODEL_DIR"),
        description="base directory for relative model paths",
    )

    def default_models(self) -> list[ModelSpec]:
        """Every embedded model, the default (Gemma) first: it serves requests that name no model."""
        return [ModelSpec(name=name, backend="llama_cpp") for name in EMBEDDED_MODELS]
