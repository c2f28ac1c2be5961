"""The GGUF server's serving objects, built once when the app starts (``build_servings``, called by
the lifespan) and kept on ``app.state.servings``; routes reach them through typed dependencies."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from gguf_model_server.api.anthropic_messages.serving import MessagesServing
from gguf_model_server.api.chat_completion.serving import ChatServing
from gguf_model_server.api.completion.serving import CompletionServing
from gguf_model_server.api.embeddings.serving import EmbeddingServing
from gguf_model_server.api.native.serving import NativeServing
from gguf_model_server.api.ollama.serving import OllamaServing
from gguf_model_server.api.responses.serving import ResponsesServing
from gguf_model_server.llama_backend import LlamaModel
from serving_core.metrics import ServerMetrics
from serving_core.registry import ModelRegistry
from serving_core.settings import ServerSettings


@dataclass(frozen=True)
class GGUFServings:
    native: NativeServing
    completion: CompletionServing
    chat: ChatServing
    messages: MessagesServing
    responses: ResponsesServing
    embeddings: EmbeddingServing
    ollama: OllamaServing


class _EngineCollector(Collector):
    """The models' engines, read when Prometheus scrapes: their RAM prompt caches and where their
    steps' time went."""

    def __init__(self, registry: ModelRegistry[Any], prefix: str) -> None:
        self._registry = registry
        self._prefix = prefix

    def collect(self) -> Iterator[Metric]:
        p = self._prefix
        size = GaugeMetricFamily(f"{p}_prompt_cache_ram_bytes", "KV states held by the RAM prompt cache",
                                 labels=["model"])
        hits = CounterMetricFamily(f"{p}_prompt_cache_ram_hits", "prompts whose start came back from the RAM "
                                   "prompt cache", labels=["model"])
        misses = CounterMetricFamily(f"{p}_prompt_cache_ram_misses", "prompts looked up in the RAM prompt cache "
                                     "and not found", labels=["model"])
        step = CounterMetricFamily(f"{p}_engine_step_seconds", "the engine thread's steps, all of them",
                                   labels=["model"])
        decode = CounterMetricFamily(f"{p}_engine_decode_seconds", "of those, in llama_decode", labels=["model"])
        wait = CounterMetricFamily(f"{p}_engine_compute_wait_seconds", "of those, waiting for a compute slot",
                                   labels=["model"])
        for name, model in self._registry.models.items():
            handle = model.handle
            if isinstance(handle, LlamaModel):
                cache, timing = handle.engine.prompt_cache, handle.engine.timing
                size.add_metric([name], cache.bytes)
                hits.add_metric([name], cache.hits)
                misses.add_metric([name], cache.misses)
                step.add_metric([name], timing.step)
                decode.add_metric([name], timing.decode)
                wait.add_metric([name], timing.compute_wait)
        yield from (size, hits, misses, step, decode, wait)


def build_servings(registry: ModelRegistry[Any], metrics: ServerMetrics, settings: ServerSettings) -> GGUFServings:
    metrics.registry.register(_EngineCollector(registry, metrics.prefix))
    chat = ChatServing(registry, metrics)
    completion, embeddings = CompletionServing(registry, metrics), EmbeddingServing(registry, metrics)
    return GGUFServings(native=NativeServing(registry, metrics), completion=completion, chat=chat,
                        messages=MessagesServing(chat), responses=ResponsesServing(chat), embeddings=embeddings,
                        ollama=OllamaServing(registry, chat, completion, embeddings))


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


def get_messages_serving(request: Request) -> MessagesServing:
    return _servings(request).messages


MessagesServingDep = Annotated[MessagesServing, Depends(get_messages_serving)]


def get_responses_serving(request: Request) -> ResponsesServing:
    return _servings(request).responses


ResponsesServingDep = Annotated[ResponsesServing, Depends(get_responses_serving)]


def get_embedding_serving(request: Request) -> EmbeddingServing:
    return _servings(request).embeddings


EmbeddingServingDep = Annotated[EmbeddingServing, Depends(get_embedding_serving)]


def get_ollama_serving(request: Request) -> OllamaServing:
    return _servings(request).ollama


OllamaServingDep = Annotated[OllamaServing, Depends(get_ollama_serving)]
