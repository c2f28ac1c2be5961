"""The engine's embedding task (``JobKind.EMBED``): a request's inputs, their pooled vectors, and
the handle the request awaits. The engine packs the inputs of waiting requests into its decodes —
each input its own sequence, every token of it in one decode, since pooling reads the whole input
(non-causal encoders attend across all of it) — and reads llama.cpp's pooled vector per sequence."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

import numpy as np

POOLING_NAMES = {1: "mean", 2: "cls", 3: "last"}  # llama_pooling_type values that pool a sequence
POOLING_TYPES = {name: value for value, name in POOLING_NAMES.items()}


@dataclass(frozen=True)
class EmbeddingStats:
    prompt_tokens: int
    queued_seconds: float
    compute_seconds: float


class Embeddings:
    """The request-side handle of one embedding job: await ``result`` for one unit vector per input."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._future: asyncio.Future[tuple[list[np.ndarray], EmbeddingStats]] = loop.create_future()
        self.cancelled = False

    def _resolve(self, vectors: list[np.ndarray] | BaseException, stats: EmbeddingStats | None = None) -> None:
        def settle() -> None:
            if self._future.done():
                return
            if isinstance(vectors, BaseException):
                self._future.set_exception(vectors)
            else:
                assert stats is not None
                self._future.set_result((vectors, stats))

        with contextlib.suppress(RuntimeError):  # a closed event loop: nobody is waiting any more
            self._loop.call_soon_threadsafe(settle)

    def cancel(self) -> None:
        self.cancelled = True

    async def result(self) -> tuple[list[np.ndarray], EmbeddingStats]:
        return await self._future


@dataclass(eq=False)
class EmbedJob:
    """Inputs (token arrays) waiting for, or in the middle of, their decodes."""

    inputs: list[list[int]]
    handle: Embeddings
    submitted: float
    vectors: list[np.ndarray | None] = field(default_factory=list)
    next_input: int = 0  # the first input not yet put in a decode
    started: float = 0.0
    compute: float = 0.0

    def __post_init__(self) -> None:
        self.vectors = [None] * len(self.inputs)

    @property
    def done(self) -> bool:
        return all(v is not None for v in self.vectors)


def normalized(vector: np.ndarray) -> np.ndarray:
    """``vector`` at unit length (OpenAI's embeddings are, and cosine similarity is then a dot product)."""
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 0 else vector
