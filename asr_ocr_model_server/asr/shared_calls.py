"""Calls that arrive while a model is busy wait, then run together as one batched call.

Concurrent transcriptions of one faster-whisper model each run faster-whisper's own algorithm
unchanged (windows in order, the previous text as prompt, the temperature fallback); only their
calls into CTranslate2 are gathered here. One encode of eight 30 s windows, or one generate for
eight windows' tokens, costs far less than eight single ones on a CPU (the matrices of one window
are too small to keep the cores busy): docs/BENCHMARKS.md row 18e.

The gathering adds no wait of its own: a call runs at once if a slot is free, and the calls that
queued meanwhile run as the next batch (up to ``max_items`` items, oldest call first, only calls
of the same kind: see ``key``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


@dataclass(eq=False)
class _Call(Generic[T, R]):
    key: Hashable
    payload: T
    items: int
    done: bool = False
    result: R | None = None
    error: BaseException | None = None


class SharedCalls(Generic[T, R]):
    """``call(key, payload)`` returns ``run(key, payloads)[i]`` for its payload, where ``payloads``
    are those of the calls with the same ``key`` that waited together (at most ``slots`` batches run
    at once: the model's own workers). The thread that finds a slot free runs the batch for all,
    so no thread of its own is needed."""

    def __init__(self, run: Callable[[Hashable, list[T]], Sequence[R]], max_items: int, slots: int = 1) -> None:
        if max_items < 1 or slots < 1:
            raise ValueError("a batch holds at least one item and at least one batch runs")
        self._run = run
        self.max_items = max_items
        self._free = slots
        self._pending: list[_Call[T, R]] = []
        self._cond = threading.Condition()
        self.batches = 0  # batches run so far, and the calls they held (tests, metrics)
        self.calls = 0

    def call(self, key: Hashable, payload: T, items: int = 1) -> R:
        me: _Call[T, R] = _Call(key, payload, items)
        with self._cond:
            self._pending.append(me)
            while not me.done:
                if self._free and self._pending:
                    self._free -= 1
                    batch = self._take()
                    self._cond.release()
                    try:
                        self._execute(batch)
                    finally:
                        self._cond.acquire()
                        self._free += 1
                        self.batches += 1
                        self.calls += len(batch)
                        for c in batch:
                            c.done = True
                        self._cond.notify_all()
                else:
                    self._cond.wait()
        if me.error is not None:
            raise me.error
        return me.result  # type: ignore[return-value]  # set with done, unless error is

    def _take(self) -> list[_Call[T, R]]:
        """The oldest waiting call and the later ones of its kind that fit beside it."""
        first = self._pending[0]
        batch, items = [first], first.items
        for c in self._pending[1:]:
            if c.key == first.key and items + c.items <= self.max_items:
                batch.append(c)
                items += c.items
        self._pending = [c for c in self._pending if c not in batch]
        return batch

    def _execute(self, batch: list[_Call[T, R]]) -> None:
        try:
            results = self._run(batch[0].key, [c.payload for c in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"a batch of {len(batch)} calls returned {len(results)} results")
            for c, r in zip(batch, results, strict=True):
                c.result = r
        except BaseException as e:  # noqa: BLE001  # every caller of the batch hears why it failed, and raises it
            for c in batch:
                c.error = e
