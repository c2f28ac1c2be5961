"""Embeddings on the engine's embedding task, for every API that asks for them (OpenAI's
``/v1/embeddings``, Ollama's ``/api/embed``)."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from gguf_model_server.api.embeddings.protocol import Embedding, EmbeddingRequest, EmbeddingResponse, EmbeddingUsage
from gguf_model_server.embedding_jobs import EmbeddingStats
from gguf_model_server.engine import JobKind
from gguf_model_server.llama_backend import LlamaModel
from serving_core.errors import BadRequest
from serving_core.metrics import ServerMetrics
from serving_core.registry import ModelRegistry


@dataclass(frozen=True)
class EmbeddingResult:
    model: str
    vectors: list[np.ndarray]  # unit length, one per input
    stats: EmbeddingStats
    load_seconds: float  # waited for the model to load (on demand)


class EmbeddingServing:
    def __init__(self, registry: ModelRegistry[LlamaModel], metrics: ServerMetrics) -> None:
        self.registry = registry
        self.metrics = metrics

    def default_model(self) -> str | None:
        """A request without ``model`` goes to the first ready embedding model (None: the usual default)."""
        return self.registry.default_ready(lambda llama: llama.engine.kind is JobKind.EMBED)

    async def embed(self, model: str | None, inputs: Sequence[str | list[int]],
                    dimensions: int | None = None) -> EmbeddingResult:
        async with self.registry.using(model or self.default_model()) as lease:
            llama = lease.handle
            llama.engine.check_admission()
            if dimensions is not None and dimensions != llama.engine.ctx.n_embd:
                raise BadRequest(f"dimensions: model '{lease.name}' gives {llama.engine.ctx.n_embd} dimensions only "
                                 "(it was not trained to be cut shorter); omit dimensions", param="dimensions")
            tokens = await lease.model.guard.peek(llama.tokenize_inputs, inputs)
            handle = llama.engine.enqueue_embedding(tokens)
            try:
                vectors, stats = await handle.result()
            except asyncio.CancelledError:
                llama.engine.cancel(handle)  # the client went away: its inputs not yet decoded are dropped
                raise
        self.metrics.counter("prompt_tokens", "prompt tokens received", ["model"]).labels(lease.name).inc(
            stats.prompt_tokens)
        return EmbeddingResult(model=lease.name, vectors=vectors, stats=stats, load_seconds=lease.load_wait_seconds)

    async def embeddings(self, req: EmbeddingRequest) -> EmbeddingResponse:
        result = await self.embed(req.model, req.inputs(), req.dimensions)
        data = [Embedding(index=i, embedding=base64.b64encode(v.astype("<f4").tobytes()).decode()
                          if req.encoding_format == "base64" else v.tolist()) for i, v in enumerate(result.vectors)]
        tokens = result.stats.prompt_tokens
        return EmbeddingResponse(data=data, model=result.model,
                                 usage=EmbeddingUsage(prompt_tokens=tokens, total_tokens=tokens))
