"""What the registry tells observers, and the observers: start-up load marks, request notes.

The registry only announces events; what is recorded for ``/health/startup`` or carried to the
access log is each observer's business, so none of it is in the registry's own code.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from serving_core import request_context
from serving_core.managed_model import ManagedModel

EventKind = Literal["queued", "loading", "progress", "ready", "failed", "unloaded", "looked_up", "waited", "leased"]


@dataclass(frozen=True)
class RegistryEvent:
    kind: EventKind
    model: ManagedModel[Any]
    load_wait_seconds: float = 0.0  # "waited", "leased": time spent waiting for an on-demand load


class RegistryListener(Protocol):
    def __call__(self, event: RegistryEvent) -> None: ...


_MARK_OF: dict[str, str] = {"queued": "queued", "loading": "load_start", "ready": "load_end", "failed": "load_end"}


class StartupLoads:
    """Each model's start-up load, recorded once in wall-clock time: {model: {"queued", "load_start",
    "load_end"}} for ``GET /health/startup``. Later loads (on demand, reload) do not rewrite it."""

    def __init__(self) -> None:
        self.loads: dict[str, dict[str, float]] = {}

    def __call__(self, event: RegistryEvent) -> None:
        mark = _MARK_OF.get(event.kind)
        model = event.model
        if mark is None or model.on_demand:
            return
        if "load_end" in self.loads.get(model.name, {}):
            return
        self.loads.setdefault(model.name, {}).setdefault(mark, time.time())


def note_request(event: RegistryEvent) -> None:
    """Carry the model a request uses (and its wait for an on-demand load) to the access log and the
    response headers (``request_context``; a no-op outside an HTTP request)."""
    if event.kind == "looked_up":
        request_context.note_model(event.model.name)
    elif event.kind == "waited":
        request_context.note_load_wait(event.load_wait_seconds)
