"""What is known about the HTTP request being served, carried up from deep below the route.

The model a request uses is noted when the registry looks it up, and the time spent waiting for an
on-demand load goes into a response header (``registry_events.note_request`` listens for both). A
context variable carries one ``RequestNotes`` per request; it is mutable, so notes also arrive from
code run in a copied context (``run_in_threadpool`` copies the context rather than sharing it).
Notes are telemetry only: nothing here releases or frees anything (leases are released by their
holders).
"""

from __future__ import annotations

from contextvars import ContextVar, Token
from dataclasses import dataclass, field


@dataclass
class RequestNotes:
    models: list[str] = field(default_factory=list)
    load_wait_seconds: float = 0.0


_current: ContextVar[RequestNotes | None] = ContextVar("request_notes", default=None)


def begin() -> tuple[RequestNotes, Token[RequestNotes | None]]:
    """Start collecting notes for one request; ``end`` with the token when the request is over."""
    notes = RequestNotes()
    return notes, _current.set(notes)


def end(token: Token[RequestNotes | None]) -> None:
    """Forget the notes (the request is over)."""
    _current.reset(token)


def note_model(name: str) -> None:
    """Record which model serves the current request (no-op outside a request)."""
    notes = _current.get()
    if notes is not None:
        notes.models.append(name)


def note_load_wait(seconds: float) -> None:
    notes = _current.get()
    if notes is not None:
        notes.load_wait_seconds += seconds
