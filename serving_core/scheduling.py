"""Compute scheduling: one call at a time per model, bounded waiting, bounded CPU work across models."""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any, ParamSpec, TypeVar

from serving_core.errors import Overloaded, ServerShuttingDown

T = TypeVar("T")
P = ParamSpec("P")

_END = object()


async def _await_thread(fut: asyncio.Future[T]) -> T:
    """Wait for a worker thread even if our task is cancelled meanwhile, then re-raise the cancel.

    The model must not be handed to the next caller while a thread is still inside it. If the
    thread itself failed (e.g. it was interrupted for shutdown), that error is raised instead of
    the cancel: it says more to the client than a bare cancellation.
    """
    cancelled = False
    while True:
        try:
            result = await asyncio.shield(fut)
            break
        except asyncio.CancelledError:
            cancelled = True
            if fut.done():
                break
    if cancelled:
        if not fut.cancelled() and fut.exception() is not None:
            raise fut.exception()  # type: ignore[misc]
        raise asyncio.CancelledError
    return result


class ModelGuard:
    """Serialises calls into one model (llama.cpp, Whisper and ONNX handles are not re-entrant).

    At most ``max_waiting`` callers queue behind the running one; the next gets 429 with a
    ``Retry-After`` estimated from the queue and the model's recent call times. While a call holds
    the model it also holds one of the server-wide ``compute`` slots, so concurrent calls into
    *different* models cannot oversubscribe the cores.

    The guard also counts the worker threads that are inside the model, so that shutdown can wait
    until none is before the model is freed (freeing it under a running llama.cpp decode
    segfaults). After ``close()`` no new call gets in.
    """

    # Weight of the newest call in the running mean of call durations (an EWMA).
    _EWMA_WEIGHT = 0.3

    def __init__(self, name: str, max_waiting: int, compute: asyncio.Semaphore) -> None:
        self.name = name
        self.max_waiting = max_waiting
        self._compute = compute
        self._lock = asyncio.Lock()
        self.waiting = 0
        self.mean_call_seconds: float | None = None
        self._inside = 0
        self._idle = threading.Condition()
        self._closed = False

    # -- admission ---------------------------------------------------------------------------

    def retry_after(self) -> float:
        """Seconds until a new caller would likely get the model: the queue ahead times a mean call."""
        per_call = self.mean_call_seconds or 1.0
        return max(1.0, math.ceil((self.waiting + 1) * per_call))

    def check_admission(self) -> None:
        """Raise now if a new caller could not get in: queue full (429) or shutting down (503)."""
        if self._closed:
            raise ServerShuttingDown(f"the server is shutting down; model '{self.name}' takes no new requests")
        if self._lock.locked() and self.waiting >= self.max_waiting:
            raise Overloaded(
                f"model '{self.name}' is busy and {self.waiting} requests are already waiting; "
                f"retry in about {self.retry_after():.0f} s",
                retry_after=self.retry_after(),
            )

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold the model (and a compute slot) for the body; raise Overloaded when the queue is full."""
        self.check_admission()
        self.waiting += 1
        try:
            await self._lock.acquire()
        finally:
            self.waiting -= 1
        try:
            if self._closed:
                raise ServerShuttingDown(f"the server is shutting down; model '{self.name}' takes no new requests")
            async with self._compute:
                yield
        finally:
            self._lock.release()

    # -- threads inside the model ------------------------------------------------------------

    @contextmanager
    def _inside_model(self) -> Iterator[None]:
        """Count the calling (worker) thread as inside the model, timing the call."""
        with self._idle:
            self._inside += 1
        t0 = time.perf_counter()
        try:
            yield
        finally:
            took = time.perf_counter() - t0
            with self._idle:
                self._inside -= 1
                prev = self.mean_call_seconds
                self.mean_call_seconds = took if prev is None else prev + self._EWMA_WEIGHT * (took - prev)
                self._idle.notify_all()

    @property
    def threads_inside(self) -> int:
        return self._inside

    def close(self) -> None:
        """Let no new call in; calls already running go on (see ``wait_idle``)."""
        self._closed = True

    def wait_idle(self, timeout: float) -> bool:
        """Block until no thread is inside the model; False if one still is after ``timeout`` seconds."""
        with self._idle:
            return self._idle.wait_for(lambda: self._inside == 0, timeout)

    # -- running work ------------------------------------------------------------------------

    def _in_thread(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> asyncio.Future[T]:
        def counted() -> T:
            with self._inside_model():
                return fn(*args, **kwargs)

        return asyncio.get_running_loop().run_in_executor(None, counted)

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run a blocking model call in a worker thread while holding the model."""
        async with self.slot():
            return await _await_thread(self._in_thread(fn, *args, **kwargs))

    async def peek(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run a read-only call (e.g. tokenizing) in a worker thread *without* taking the model's turn.

        Only for calls that are safe beside a running call; the thread still counts as inside the
        model, so the model is not freed under it.
        """
        if self._closed:
            raise ServerShuttingDown(f"the server is shutting down; model '{self.name}' takes no new requests")
        return await _await_thread(self._in_thread(fn, *args, **kwargs))

    async def stream(self, make_iter: Callable[[], Iterator[T]]) -> AsyncIterator[T]:
        """Drive a blocking iterator in one worker thread, yielding its items on the event loop.

        If the consumer goes away (client disconnect), the thread stops at the next item and
        the model is released only after the thread has left it.
        """
        async with self.slot():
            loop = asyncio.get_running_loop()
            queue: asyncio.Queue[Any] = asyncio.Queue()
            stop = threading.Event()

            def produce() -> None:
                it = make_iter()
                try:
                    for item in it:
                        loop.call_soon_threadsafe(queue.put_nowait, item)
                        if stop.is_set():
                            break
                except BaseException as exc:  # noqa: BLE001 - handed to the consumer
                    loop.call_soon_threadsafe(queue.put_nowait, exc)
                finally:
                    close = getattr(it, "close", None)
                    if close is not None:
                        close()
                    loop.call_soon_threadsafe(queue.put_nowait, _END)

            fut = self._in_thread(produce)
            try:
                while True:
                    item = await queue.get()
                    if item is _END:
                        break
                    if isinstance(item, BaseException):
                        raise item
                    yield item
            finally:
                stop.set()
                await _await_thread(fut)
