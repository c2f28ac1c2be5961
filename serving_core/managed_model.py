"""One configured model and its lifecycle state, as every part of the registry sees it."""

from __future__ import annotations

import enum
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeAlias, TypeVar

from serving_core.errors import ModelFailed, hide_paths
from serving_core.scheduling import ModelGuard
from serving_core.specs import ModelSpec


class ModelState(str, enum.Enum):
    PENDING = "pending"
    LOADING = "loading"
    READY = "ready"
    FAILED = "failed"
    UNLOADED = "unloaded"
    SLEEPING = "sleeping"  # its handle kept, part of its memory freed (``ModelHooks.sleep``); wakes on use


H = TypeVar("H")
"""The type of a loaded model handle (``LlamaModel`` on the GGUF server, the ASR/OCR model protocols)."""

Loader: TypeAlias = Callable[[ModelSpec], H]
"""Builds a loaded handle from a spec; raises on failure. Runs in a loader thread."""

HandleHook: TypeAlias = Callable[[H], None]
"""Called with a loaded handle: ``warmup`` runs it once, ``release`` frees it, ``interrupt`` asks running
calls in it to stop."""


@dataclass(frozen=True)
class ModelHooks(Generic[H]):
    """What a backend tells the registry: how to load a spec into a handle, and what to do with one."""

    loader: Loader[H]
    warmup: HandleHook[H] | None = None
    release: HandleHook[H] | None = None
    interrupt: HandleHook[H] | None = None
    # Specs with the same key share one loaded handle (the file, backend and options, by default).
    share_key: Callable[[ModelSpec], str] = ModelSpec.load_key
    # The files a handle maps from disk (for the page-cache residency on /health); none: not reported.
    weights: Callable[[H], Sequence[Path]] | None = None
    # What a loaded handle serves, for /health and /models (e.g. {"task": "embedding"}); none: nothing.
    describe: Callable[[H], dict[str, Any]] | None = None
    # How many calls a spec's model takes at once (its guard's concurrency); none: one.
    concurrency: Callable[[ModelSpec], int] | None = None
    # Free part of an idle handle's memory, keeping what makes waking fast (level 1: its working
    # memory; 2: its weights too); ``wake`` makes it whole again (a load's work). None: cannot sleep.
    sleep: Callable[[H, int], None] | None = None
    wake: Callable[[H], H] | None = None


@dataclass(frozen=True)
class RegistryPolicy:
    """How a registry loads, queues and frees its models (``registry_settings`` maps the settings to it)."""

    workers: int | None = None  # load threads; default one per distinct model
    retries: int = 1  # a failed load is tried again this often (not for a PermanentLoadError)
    retry_delay: float = 0.5
    warmup_default: bool = False  # one 1-token call before a model counts as ready (a spec may override)
    max_waiting: int = 32  # callers queued per model; the next one gets 429
    share_identical: bool = True
    show_paths: bool = False  # file-system paths in public errors
    drain_seconds: float = 30.0  # shutdown waits this long for running calls before freeing models
    on_demand_wait_seconds: float = 120.0  # a request waits this long for a model it loads


@dataclass
class ManagedModel(Generic[H]):
    """One configured model and everything known about its lifecycle; ``handle`` is the loaded model."""

    spec: ModelSpec
    guard: ModelGuard
    state: ModelState = ModelState.PENDING
    attempts: int = 0
    load_seconds: float | None = None
    error: str | None = None
    handle: H | None = None
    shares_with: str | None = None  # the model whose loaded handle (and guard) this one uses
    transitions: dict[str, float] = field(default_factory=dict)
    refs: int = 0  # requests holding the model (it is never unloaded while one does)
    last_used: float = field(default_factory=time.monotonic)
    on_demand: bool = False  # this load was started by a request or an admin call: requests wait for it
    keep_alive_override: float | None = None  # set by a request (Ollama's keep_alive): replaces the spec's
    asleep: H | None = None  # the handle while the model sleeps (``handle`` is None then: nothing serves)
    sleep_level: int | None = None
    progress: float | None = None  # of the running (or last) load, 0-1, as the backend reports it
    phase: str | None = None  # what the running load is doing ("reading weights", ...), if the backend says

    @property
    def keep_alive(self) -> float:
        """Seconds it stays loaded without requests (-1: forever): a request's override, else the spec's."""
        return self.spec.keep_alive if self.keep_alive_override is None else self.keep_alive_override
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        self.transitions[ModelState.PENDING.value] = time.time()

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def loaded(self) -> H:
        """The loaded handle of a ready model (one that ``ModelRegistry.acquire`` or ``get`` returned)."""
        handle = self.handle
        if handle is None:
            raise ModelFailed(f"model '{self.name}' is not loaded")
        return handle

    def set_state(self, state: ModelState, **changes: Any) -> None:
        """Change state and related fields together, so readers never see a half-applied update."""
        with self._lock:
            for key, value in changes.items():
                setattr(self, key, value)
            self.state = state
            self.transitions[state.value] = time.time()
            if state is ModelState.LOADING:
                self.progress, self.phase = 0.0, None
            elif state is ModelState.READY:
                self.progress, self.phase = 1.0, None
            else:
                self.phase = None

    def set_progress(self, fraction: float, phase: str | None) -> bool:
        """Record a loading model's progress; True if it moved by a percent or more, or changed phase
        (what is worth an event). Ignored once the load is over."""
        with self._lock:
            if self.state is not ModelState.LOADING:
                return False
            moved = self.progress is None or abs(fraction - self.progress) >= 0.01 or (
                phase is not None and phase != self.phase)
            if moved:
                self.progress = fraction
                if phase is not None:
                    self.phase = phase
            return moved

    def public_error(self, show_paths: bool = False) -> str | None:
        """The error as clients see it: file-system paths cut to the file name unless ``show_paths``."""
        error = self.error
        return error if error is None or show_paths else hide_paths(error)

    def snapshot(self, show_paths: bool = False) -> dict[str, Any]:
        """A consistent copy of the public fields."""
        with self._lock:
            return {
                "state": self.state.value,
                "backend": self.spec.backend,
                "load_seconds": None if self.load_seconds is None else round(self.load_seconds, 3),
                "attempts": self.attempts,
                "error": self.public_error(show_paths),
                "since": self.transitions[self.state.value],
                "shares_with": self.shares_with,
                "progress": None if self.progress is None else round(self.progress, 3),
                "phase": self.phase,
                "sleep_level": self.sleep_level if self.state is ModelState.SLEEPING else None,
            }
