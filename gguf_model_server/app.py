"""App factory of the GGUF model server."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from gguf_model_server.loading import build_registry
from gguf_model_server.routes_native import native_router
from gguf_model_server.routes_openai import openai_router
from gguf_model_server.settings import GGUFServerSettings
from serving_core.app import create_model_app
from serving_core.registry import ModelRegistry
from serving_core.settings import ServerSettings
from serving_core.startup import StartupTimeline


def create_app(settings: ServerSettings | None = None, registry: ModelRegistry[Any] | None = None,
               timeline: StartupTimeline | None = None) -> FastAPI:
    """Build the GGUF server app; models start loading when the app starts, unless ``registry`` already is."""
    settings = settings or GGUFServerSettings.load()
    return create_model_app(settings, registry or build_registry(settings), title="GGUF model server",
                            routers=[native_router(), openai_router()], metrics_prefix="gguf", timeline=timeline)
