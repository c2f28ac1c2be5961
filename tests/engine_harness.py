"""In-process engine helpers for tests: load a model with its engine, generate, read logits."""

from __future__ import annotations

import asyncio
import ctypes
from pathlib import Path
from typing import Any

import numpy as np

from gguf_model_server.engine import GenerationRequest, GenerationStats
from gguf_model_server.generation_params import SamplingConfig
from gguf_model_server.llama_backend import LlamaModel, make_loader
from gguf_model_server.llama_native import Batch, ContextShape, NativeContext
from serving_core.compute import ComputeSlots
from serving_core.specs import ModelSpec

GREEDY = SamplingConfig(temperature=0.0)


def load(name: str, path: Path | None, **options: Any) -> LlamaModel:
    loader = make_loader(None, ComputeSlots(1), max_waiting=64)
    spec = ModelSpec(name=name, backend="llama_cpp", path=str(path) if path else None,
                     options={"n_threads": 2, **options})
    return loader(spec)  # type: ignore[no-any-return]


def generate(model: LlamaModel, prompts: list[str], **request: Any) -> list[tuple[str, GenerationStats]]:
    """Submit every prompt at once (so they are batched together) and wait for all."""
    async def run() -> list[tuple[str, GenerationStats]]:
        gens = [model.engine.submit(GenerationRequest(prompt=model.tokenize_prompt(p), **request)) for p in prompts]
        texts = await asyncio.gather(*(g.text() for g in gens))
        return [(t, g.stats) for t, g in zip(texts, gens, strict=True) if g.stats is not None]

    return asyncio.run(run())


def last_logits(model: LlamaModel, tokens: list[int]) -> np.ndarray:
    """The next-token logits after ``tokens``, evaluated alone in a fresh context."""
    ctx = NativeContext(model.native, ContextShape(n_ctx_seq=max(64, len(tokens) + 8), n_seq=1,
                                                   n_batch=max(8, len(tokens)), n_threads=2))
    batch = Batch(len(tokens))
    try:
        for i, t in enumerate(tokens):
            batch.add(t, i, 0, i == len(tokens) - 1)
        assert ctx.decode(batch) == 0
        lib = model.native._lib
        ptr = lib.llama_get_logits_ith(ctx.ptr, -1)
        return np.ctypeslib.as_array(ctypes.cast(ptr, ctypes.POINTER(ctypes.c_float)),
                                     shape=(model.native.n_vocab,)).copy()
    finally:
        batch.close()
        ctx.close()
