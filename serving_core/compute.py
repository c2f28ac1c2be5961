"""Server-wide compute slots for model threads: a fair (first come, first served) semaphore.

A model's loop thread takes a slot per decode step, not per request, so that several models on few
cores interleave step by step. ``threading.Semaphore`` is not fair: a thread that releases and
re-acquires in a loop (every engine does) usually gets the slot back before a waiting thread wakes,
starving the other models.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager


class ComputeSlots:
    """At most ``n`` holders at once; waiters are served in arrival order."""

    def __init__(self, n: int) -> None:
        if n < 1:
            raise ValueError("compute slots must be at least 1")
        self.n = n
        self._free = n
        self._lock = threading.Lock()
        self._waiters: deque[threading.Event] = deque()

    def acquire(self) -> None:
        with self._lock:
            if self._free > 0 and not self._waiters:
                self._free -= 1
                return
            turn = threading.Event()
            self._waiters.append(turn)
        turn.wait()  # the releasing thread handed its slot to us

    def release(self) -> None:
        with self._lock:
            if self._waiters:
                self._waiters.popleft().set()
            else:
                self._free += 1

    @contextmanager
    def held(self) -> Iterator[None]:
        self.acquire()
        try:
            yield
        finally:
            self.release()
