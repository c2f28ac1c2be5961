"""App factory of the GGUF model server."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from gguf_model_server.api.anthropic_messages.router import anthropic_messages_router
from gguf_model_server.api.anthropic_messages.serving import anthropic_error
from gguf_model_server.api.chat_completion.router import chat_completion_router
from gguf_model_server.api.completion.router import completion_router
from gguf_model_server.api.dependencies import build_servings
from gguf_model_server.api.embeddings.router import embeddings_router
from gguf_model_server.api.native.router import native_router
from gguf_model_server.api.ollama.router import ollama_router
from gguf_model_server.api.ollama.serving import ollama_error
from gguf_model_server.api.responses.router import responses_router
from gguf_model_server.loading import build_registry
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
                            routers=[native_router(), completion_router(), chat_completion_router(),
                                     responses_router(), embeddings_router(), anthropic_messages_router(),
                                     ollama_router()],
                            servings=build_servings, metrics_prefix="gguf", timeline=timeline,
                            error_dialects=[("/v1/messages", anthropic_error), ("/api", ollama_error)])
