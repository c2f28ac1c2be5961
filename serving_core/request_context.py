"""What is known about the HTTP request being served, for its metrics and access-log line.

The model a request was served by is noted where it is looked up (``ModelRegistry.get``), deep
below the route; a context variable carries it up to the middleware that records the request.
It holds a list (mutable), so the note also arrives from code run in a copied context
(``run_in_threadpool`` copies the context, it does not share it).
"""

from __future__ import annotations

from contextvars import ContextVar, Token

_served_by: ContextVar[list[str] | None] = ContextVar("served_by", default=None)


def begin() -> tuple[list[str], Token[list[str] | None]]:
    """Start collecting notes for one request; returns the notes and the token for ``end``."""
    notes: list[str] = []
    return notes, _served_by.set(notes)


def end(token: Token[list[str] | None]) -> None:
    _served_by.reset(token)


def note_model(name: str) -> None:
    """Record which model serves the current request (no-op outside a request)."""
    notes = _served_by.get()
    if notes is not None:
        notes.append(name)
