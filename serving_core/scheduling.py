"""Compute scheduling: one call at a time per model, bounded waiting, bounded CPU work across models."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from serving_core.errors import Overloaded

T = TypeVar("T")

_END = object()


async def _await_thread(fut: asyncio.Future[Any]) -> Any:
    """Wait for a worker thread even if our task is cancelled meanwhile, then re-raise the cancel.

    The model must not be handed to the next caller while a thread is still inside it.
    """
    cancelled = False
    while True:
        try:
            result = await asyncio.shield(fut)
            break
        except asyncio.CancelledError:
            if fut.done():
                cancelled = True
                break
            cancelled = True
    if cancelled:
        raise asyncio.CancelledError
    return result


class ModelGuard:
    """Serialises calls into one model (llama.cpp, Whisper and ONNX handles are not re-entrant).

    At most ``max_waiting`` callers queue behind the running one; the next gets 429. While a
    call holds the model it also holds one of the server-wide ``compute`` slots, so concurrent
    calls into *different* models cannot oversubscribe the cores.
    """

    def __init__(self, name: str, max_waiting: int, compute: asyncio.Semaphore) -> None:
        self.name = name
        self.max_waiting = max_waiting
        self._compute = compute
        self._lock = asyncio.Lock()
        self.waiting = 0

    def check_admission(self) -> None:
        """Raise Overloaded now if a new caller would have to queue beyond the limit."""
        if self._lock.locked() and self.waiting >= self.max_waiting:
            raise Overloaded(
                f"model '{self.name}' is busy and {self.waiting} requests are already waiting; retry later",
                retry_after=1,
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
            async with self._compute:
                yield
        finally:
            self._lock.release()

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a blocking model call in a worker thread while holding the model."""
        async with self.slot():
            loop = asyncio.get_running_loop()
            fut = loop.run_in_executor(None, lambda: fn(*args, **kwargs))
            return await _await_thread(fut)  # type: ignore[no-any-return]

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

            fut = loop.run_in_executor(None, produce)
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
