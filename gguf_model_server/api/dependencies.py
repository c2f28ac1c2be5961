"""The GGUF server's serving objects, built once when the app starts (``build_servings``, called by
the lifespan) and kept on ``app.state.servings``; routes reach them through typed dependencies."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request

from gguf_model_server.api.chat_completion.serving import ChatServing
from gguf_model_server.api.completion.serving import CompletionServing
from gguf_model_server.api.native.serving import NativeServing
from serving_core.metrics import ServerMetrics
from serving_core.registry import ModelRegistry
from serving_core.settings import ServerSettings


@dataclass(frozen=True)
class GGUFServings:
    native: NativeServing
    completion: CompletionServing
    chat: ChatServing


def build_servings(registry: ModelRegistry[Any], metrics: ServerMetrics, settings: ServerSettings) -> GGUFServings:
    return GGUFServings(native=NativeServing(registry, metrics), completion=CompletionServing(registry, metrics),
                        chat=ChatServing(registry, metrics))


def _servings(request: Request) -> GGUFServings:
    servings: GGUFServings = request.app.state.servings
    return servings


def get_native_serving(request: Request) -> NativeServing:
    return _servings(request).native


def get_completion_serving(request: Request) -> CompletionServing:
    return _servings(request).completion


def get_chat_serving(request: Request) -> ChatServing:
    return _servings(request).chat


NativeServingDep = Annotated[NativeServing, Depends(get_native_serving)]
CompletionServingDep = Annotated[CompletionServing, Depends(get_completion_serving)]
ChatServingDep = Annotated[ChatServing, Depends(get_chat_serving)]
