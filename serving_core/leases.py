"""Leases: who holds a ready model, so that it is never freed under them, and when it was last used.

The code that takes a lease releases it (speaches' ``SelfDisposingModel`` is the model): a route
in ``async with registry.using(name) as lease:``, a stream in its own ``finally``. Nothing else
releases leases: a lease taken outside an HTTP request (a background task, a WebSocket) is
released the same way.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from types import TracebackType
from typing import Generic

from serving_core.managed_model import H, ManagedModel, ModelState


class Lease(Generic[H]):
    """One holder's claim on a ready model: ``handle`` stays loaded until ``release`` (idempotent).

    A context manager, sync and async, that releases on exit."""

    def __init__(self, model: ManagedModel[H], owner: ManagedModel[H], book: LeaseBook,
                 load_wait_seconds: float = 0.0) -> None:
        self.model = model  # the name asked for (an alias shares its owner's handle)
        self._owner = owner
        self._book = book
        self.load_wait_seconds = load_wait_seconds  # spent waiting for an on-demand load
        self.released = False

    @property
    def name(self) -> str:
        return self.model.name

    @property
    def handle(self) -> H:
        return self.model.loaded

    def release(self) -> None:
        if not self.released:
            self.released = True
            self._book.give_back(self._owner)

    def __enter__(self) -> Lease[H]:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()

    async def __aenter__(self) -> Lease[H]:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        self.release()


class LeaseBook:
    """Reference counts and last use of the models that own handles; ``lock`` also guards every
    load/unload decision, so that an unload and a new lease never interleave."""

    def __init__(self) -> None:
        self.lock = threading.RLock()

    def take(self, model: ManagedModel[H], owner: ManagedModel[H], load_wait_seconds: float = 0.0) -> Lease[H]:
        with self.lock:
            owner.refs += 1
        return Lease(model, owner, self, load_wait_seconds)

    def give_back(self, owner: ManagedModel[H]) -> None:
        with self.lock:
            owner.refs -= 1
            owner.last_used = time.monotonic()

    @staticmethod
    def idle(owners: Iterable[ManagedModel[H]], now: float | None = None) -> list[str]:
        """The ready, unheld models whose ``keep_alive`` has passed since their last use."""
        now = time.monotonic() if now is None else now
        return [m.name for m in owners
                if m.keep_alive >= 0 and m.state is ModelState.READY and m.refs == 0
                and now - m.last_used >= m.keep_alive]
