"""Which models the GGUF server loads, and how (no web-framework imports: loading starts first)."""

from __future__ import annotations

from gguf_model_server.llama_backend import LlamaModel, make_loader
from serving_core.registry import ModelRegistry
from serving_core.settings import ServerSettings


def build_registry(settings: ServerSettings) -> ModelRegistry:
    return ModelRegistry.from_settings(settings, make_loader(settings.model_dir), warmup=LlamaModel.warmup,
                                       release=LlamaModel.close, interrupt=LlamaModel.interrupt)
