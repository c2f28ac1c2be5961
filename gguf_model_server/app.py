"""App factory of the GGUF model server."""

from __future__ import annotations

from fastapi import FastAPI

from gguf_model_server.llama_backend import LlamaModel, make_loader
from gguf_model_server.routes_native import native_router
from gguf_model_server.routes_openai import openai_router
from gguf_model_server.settings import GGUFServerSettings
from serving_core.app import create_model_app
from serving_core.settings import ServerSettings


def create_app(settings: ServerSettings | None = None) -> FastAPI:
    """Build the GGUF server app; models start loading when the app starts (lifespan)."""
    settings = settings or GGUFServerSettings.load()
    return create_model_app(
        settings,
        title="GGUF model server",
        loader=make_loader(settings.model_dir),
        routers=[native_router(), openai_router()],
        warmup=LlamaModel.warmup,
        release=LlamaModel.close,
    )
