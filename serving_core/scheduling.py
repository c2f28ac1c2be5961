"""Compute scheduling: calls into each model (one at a time, or the few it runs at once), bounded waiting,
bounded CPU work across models."""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import ParamSpec, TypeVar

from serving_core.compute import ComputeSlots
from serving_core.errors import Overloaded, ServerShuttingDown

T = TypeVar("T")
P = ParamSpec("P")


class CallTimes:
    """The recent mean duration of a model's calls (requests), and the ``Retry-After`` it implies.

    A running mean (EWMA) where the newest call weighs 0.3: it follows a model whose calls got
    slower (a busier machine, longer prompts) within a few calls, without one outlier dominating.
    """

    WEIGHT = 0.3

    def __init__(self) -> None:
        self.mean: float | None = None

    def observe(self, seconds: float) -> None:
        prev = self.mean
        self.mean = seconds if prev is None else prev + self.WEIGHT * (seconds - prev)

    def retry_after(self, rounds_ahead: int) -> float:
        """Seconds until a new caller would likely get in, ``rounds_ahead`` calls (or batches) from now,
        rounded up: a client told to come back never comes back before its turn is likely."""
        return max(1.0, math.ceil(rounds_ahead * (self.mean or 1.0)))


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
    """Lets ``concurrency`` calls into one model at a time (one, unless the backend runs several
    calls at once on workers of its own that together use the cores of one call: llama.cpp and ONNX
    handles are not re-entrant; CTranslate2's Whisper has ``num_workers``).

    At most ``max_waiting`` callers queue behind the running ones; the next gets 429 with a
    ``Retry-After`` estimated from the queue and the model's recent call times. While calls hold
    the model it also holds one of the server-wide ``compute`` slots (one for all its calls at
    once), so concurrent calls into *different* models cannot oversubscribe the cores. A call joins
    its model's running ones only while no other model waits for a slot: the model cannot keep
    the slot for ever by overlapping its calls.

    The guard also counts the worker threads that are inside the model, so that shutdown can wait
    until none is before the model is freed (freeing it under a running llama.cpp decode
    segfaults). After ``close()`` no new call gets in.
    """

    def __init__(self, name: str, max_waiting: int, compute: ComputeSlots, concurrency: int = 1) -> None:
        if concurrency < 1:
            raise ValueError("a model takes at least one call at a time")
        self.name = name
        self.max_waiting = max_waiting
        self.concurrency = concurrency
        self._compute = compute
        self._lock = asyncio.Semaphore(concurrency)
        self._compute_lock = asyncio.Lock()
        self._compute_users = 0
        self.waiting = 0
        self.call_times = CallTimes()
        self._inside = 0
        self._idle = threading.Condition()
        self._closed = False

    # -- admission ---------------------------------------------------------------------------

    def retry_after(self) -> float:
        """Seconds until a new caller would likely get the model: the queue ahead times a mean call."""
        return self.call_times.retry_after(self.waiting + 1)

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
            await self._enter_compute()
            try:
                if self._closed:  # closed while this call waited for a compute slot
                    raise ServerShuttingDown(f"the server is shutting down; model '{self.name}' takes no new "
                                             "requests")
                yield
            finally:
                self._leave_compute()
        finally:
            self._lock.release()

    async def _enter_compute(self) -> None:
        """Take the model's compute slot, or share the one its running calls hold (unless another
        model is waiting for one: then wait for this model's calls to end and queue behind it)."""
        while True:
            async with self._compute_lock:
                if self._compute_users == 0:
                    await self._compute.acquire_async()
                    self._compute_users = 1
                    return
                if not self._compute.waiting:
                    self._compute_users += 1
                    return
            await asyncio.sleep(0.01)  # others first: retry once this model's running calls left

    def _leave_compute(self) -> None:
        self._compute_users -= 1
        if self._compute_users == 0:
            self._compute.release()

    # -- threads inside the model ------------------------------------------------------------

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
        # Counted as inside from the moment it is submitted, not when a worker thread picks it up:
        # shutdown must not see the model idle (and free it) while the call waits for a thread.
        with self._idle:
            self._inside += 1

        def counted() -> T:
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self._left(time.perf_counter() - t0)

        try:
            return asyncio.get_running_loop().run_in_executor(None, counted)
        except BaseException:
            self._left(None)
            raise

    def _left(self, took: float | None) -> None:
        """A call left the model (``took`` seconds; None: it never ran)."""
        with self._idle:
            self._inside -= 1
            if took is not None:
                self.call_times.observe(took)
            self._idle.notify_all()

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
