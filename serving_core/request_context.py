"""What is known about the HTTP request being served, carried up from deep below the route.

The model a request uses is noted where it is looked up (``ModelRegistry.lookup``), a lease on it is
released when the request ends (its whole stream included), and the time spent waiting for an
on-demand load goes into a response header. A context variable carries one ``RequestNotes`` per
request; it is mutable, so notes also arrive from code run in a copied context
(``run_in_threadpool`` copies the context rather than sharing it).
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar, Token
from dataclasses import dataclass, field


@dataclass
class RequestNotes:
    models: list[str] = field(default_factory=list)
    load_wait_seconds: float = 0.0
    at_end: list[Callable[[], None]] = field(default_factory=list)


_current: ContextVar[RequestNotes | None] = ContextVar("request_notes", default=None)


def begin() -> tuple[RequestNotes, Token[RequestNotes | None]]:
    """Start collecting notes for one request; ``end`` with the token when the request is over."""
    notes = RequestNotes()
    return notes, _current.set(notes)


def end(notes: RequestNotes, token: Token[RequestNotes | None]) -> None:
    """Run what was registered for the request's end (lease releases), then forget the notes."""
    _current.reset(token)
    for fn in notes.at_end:
        fn()


def note_model(name: str) -> None:
    """Record which model serves the current request (no-op outside a request)."""
    notes = _current.get()
    if notes is not None:
        notes.models.append(name)


def note_load_wait(seconds: float) -> None:
    notes = _current.get()
    if notes is not None:
        notes.load_wait_seconds += seconds


def at_request_end(fn: Callable[[], None]) -> bool:
    """Call ``fn`` when the current request ends; False (not registered) outside a request."""
    notes = _current.get()
    if notes is None:
        return False
    notes.at_end.append(fn)
    return True
