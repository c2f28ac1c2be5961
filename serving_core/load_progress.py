"""How far a model's load has got, reported from inside a backend's loader.

A loader runs in a thread of its own (``model_loads``), which binds a reporter for it; the backend
calls ``report(fraction, phase)`` as it goes (llama.cpp's ``progress_callback``, or the phases a
Python loader passes through) without knowing which model or registry it reports to. Outside a
load, ``report`` does nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

Reporter = Callable[[float, str | None], None]
"""Takes a fraction (0-1) of the load done, and the phase it is in (None: unchanged)."""

_reporter: ContextVar[Reporter | None] = ContextVar("load_progress_reporter", default=None)


def report(fraction: float, phase: str | None = None) -> None:
    """The current load is ``fraction`` done, in ``phase``; a no-op outside a load."""
    reporter = _reporter.get()
    if reporter is not None:
        reporter(min(1.0, max(0.0, float(fraction))), phase)


@contextmanager
def reporting_to(reporter: Reporter) -> Iterator[None]:
    """``report`` calls in this thread (and code it runs) go to ``reporter`` for the block."""
    token = _reporter.set(reporter)
    try:
        yield
    finally:
        _reporter.reset(token)
