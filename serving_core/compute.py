"""Server-wide compute slots: a fair (first come, first served) semaphore for threads and tasks alike.

One pool per server bounds the model work running at once, whoever runs it: a GGUF engine's loop
thread takes a slot per decode step (not per request, so that several models on few cores
interleave step by step), an ASR/OCR call takes one on the event loop for its whole call
(``held_async``). ``threading.Semaphore`` is not fair: a thread that releases and re-acquires in a
loop (every engine does) usually gets the slot back before a waiting thread wakes, starving the
other models.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager


class _ThreadTurn:
    def __init__(self) -> None:
        self.event = threading.Event()

    def grant(self) -> bool:
        self.event.set()
        return True


class _TaskTurn:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.future: asyncio.Future[None] = loop.create_future()

    def grant(self) -> bool:
        """Hand the slot to the waiting task; False if its event loop is gone (nobody to take it)."""
        try:
            self.loop.call_soon_threadsafe(_resolve, self.future)
        except RuntimeError:  # the loop is closed
            return False
        return True


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class ComputeSlots:
    """At most ``n`` holders at once; waiters, threads or event-loop tasks, are served in arrival order."""

    def __init__(self, n: int) -> None:
        if n < 1:
            raise ValueError("compute slots must be at least 1")
        self.n = n
        self._free = n
        self._lock = threading.Lock()
        self._waiters: deque[_ThreadTurn | _TaskTurn] = deque()

    @property
    def free(self) -> int:
        return self._free

    @property
    def waiting(self) -> int:
        """Holders-to-be queued for a slot."""
        return len(self._waiters)

    def acquire(self) -> None:
        with self._lock:
            if self._free > 0 and not self._waiters:
                self._free -= 1
                return
            turn = _ThreadTurn()
            self._waiters.append(turn)
        turn.event.wait()  # the releasing thread handed its slot to us

    async def acquire_async(self) -> None:
        """``acquire`` for a task on an event loop: waits without blocking the loop; a cancelled waiter
        leaves the queue, or passes on a slot that reached it meanwhile."""
        with self._lock:
            if self._free > 0 and not self._waiters:
                self._free -= 1
                return
            turn = _TaskTurn(asyncio.get_running_loop())
            self._waiters.append(turn)
        try:
            await turn.future
        except asyncio.CancelledError:
            with self._lock:
                if turn in self._waiters:
                    self._waiters.remove(turn)
                    raise
            self.release()  # granted while being cancelled: the slot goes to the next waiter
            raise

    def release(self) -> None:
        with self._lock:
            while self._waiters:
                if self._waiters.popleft().grant():
                    return
            self._free += 1

    @contextmanager
    def held(self) -> Iterator[None]:
        self.acquire()
        try:
            yield
        finally:
            self.release()

    @asynccontextmanager
    async def held_async(self) -> AsyncIterator[None]:
        await self.acquire_async()
        try:
            yield
        finally:
            self.release()
