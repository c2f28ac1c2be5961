"""The model registry: owns every managed model and loads them in parallel in the background."""

from __future__ import annotations

import asyncio
import enum
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeAlias, TypeVar

from serving_core.errors import (
    LoadInProgress,
    ModelFailed,
    ModelLoading,
    ModelNotFound,
    PermanentLoadError,
    ServerShuttingDown,
    echo,
    hide_paths,
)
from serving_core.memory import release_model_memory
from serving_core.request_context import at_request_end, note_load_wait, note_model
from serving_core.residency import mapped_files, resident_fraction
from serving_core.scheduling import ModelGuard
from serving_core.specs import ModelSpec

log = logging.getLogger("serving_core.registry")


class ModelState(str, enum.Enum):
    PENDING = "pending"
    LOADING = "loading"
    READY = "ready"
    FAILED = "failed"
    UNLOADED = "unloaded"


class _Stopped(Exception):
    """The server began shutting down while a load was running."""


H = TypeVar("H")
"""The type of a loaded model handle (``LlamaModel`` on the GGUF server, the ASR/OCR model protocols)."""

Loader: TypeAlias = Callable[[ModelSpec], H]
"""Builds a loaded handle from a spec; raises on failure. Runs in a loader thread."""

HandleHook: TypeAlias = Callable[[H], None]
"""Called with a loaded handle: ``warmup`` runs it once, ``release`` frees it, ``interrupt`` asks running
calls in it to stop."""


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
            }


class ModelRegistry(Generic[H]):
    """Loads every spec in a thread pool and hands out ready models by name.

    ``registry_settings.registry_from_settings`` builds one from a server's settings."""

    def __init__(
        self,
        specs: list[ModelSpec],
        loader: Loader[H],
        *,
        workers: int | None = None,
        retries: int = 1,
        retry_delay: float = 0.5,
        warmup: HandleHook[H] | None = None,
        warmup_default: bool = False,
        max_waiting: int = 32,
        compute: asyncio.Semaphore | None = None,
        release: HandleHook[H] | None = None,
        interrupt: HandleHook[H] | None = None,
        share_identical: bool = True,
        share_key: Callable[[ModelSpec], str] = ModelSpec.load_key,
        show_paths: bool = False,
        drain_seconds: float = 30.0,
        on_demand_wait_seconds: float = 120.0,
        weights: Callable[[H], Sequence[Path]] | None = None,
    ) -> None:
        compute = compute or asyncio.Semaphore(1)
        self.models: dict[str, ManagedModel[H]] = {}
        # Names that configure the same backend, file and options share one loaded handle (and so
        # one guard): loading it once saves the load time and the memory of every extra copy.
        self._aliases: dict[str, list[ManagedModel[H]]] = {}
        first_with_key: dict[str, ManagedModel[H]] = {}
        for spec in specs:
            key = share_key(spec)
            primary = first_with_key.get(key) if share_identical else None
            if primary is None:
                model: ManagedModel[H] = ManagedModel(spec=spec, guard=ModelGuard(spec.name, max_waiting, compute))
                first_with_key[key] = model
                self._aliases[spec.name] = []
            else:
                model = ManagedModel(spec=spec, guard=primary.guard, shares_with=primary.name)
                self._aliases[primary.name].append(model)
            self.models[spec.name] = model
        self._loader = loader
        self._warmup = warmup
        self._warmup_default = warmup_default
        self._release = release
        self._interrupt = interrupt
        self.show_paths = show_paths
        self.drain_seconds = drain_seconds
        self.on_demand_wait_seconds = on_demand_wait_seconds
        self._weights = weights
        self._mappings: dict[str, tuple[int, int]] = {}  # this process's file mappings, for _resident
        self._mappings_read_at = float("-inf")
        self.workers = workers or max(1, len(self._aliases))
        self.retries = retries
        self.retry_delay = retry_delay
        self._executor: ThreadPoolExecutor | None = None
        self._futures: list[Future[None]] = []
        self._stopping = threading.Event()
        self._lifecycle = threading.RLock()  # load/unload decisions and reference counts
        self._loads: dict[str, Future[None]] = {}
        self.started_at: float | None = None
        self.finished_at: float | None = None
        self.finished_wall: float | None = None  # time.time() when every start-up load had ended
        # Start-up loads only, recorded once (a later unload/reload does not rewrite them), wall clock:
        # {model: {"queued": …, "load_start": …, "load_end": …}} for GET /health/startup.
        self.startup_loads: dict[str, dict[str, float]] = {}
        self._done = threading.Event()

    # -- loading -----------------------------------------------------------------------------

    @property
    def started(self) -> bool:
        return self.started_at is not None

    def start_loading(self) -> None:
        """Submit every eager model's load to the pool and return at once (a second call does nothing).
        Lazy models stay ``unloaded`` until their first request."""
        with self._lifecycle:
            if self.started_at is not None:
                return
            self.started_at = time.perf_counter()
        for name in self._aliases:
            if self.models[name].spec.load == "lazy":
                self._set(self.models[name], ModelState.UNLOADED, error=None)
                log.info("Model '%s' loads on its first request (load: lazy)", name)
        primaries = [self.models[name] for name in self._aliases if self.models[name].spec.load == "eager"]
        for name, aliases in self._aliases.items():
            for alias in aliases:
                log.info("Model '%s' shares the loaded model of '%s' (same backend, file and options)",
                         alias.name, name)
        if len(primaries) == 1:
            log.info("PERFORMANCE: Loading 1 model in the background")
        elif self.workers > 1:
            log.info("PERFORMANCE: Using parallel model loading (%d workers for %d models)",
                     min(self.workers, len(primaries)), len(primaries))
        else:
            log.info("PERFORMANCE: Using sequential model loading (%d models, 1 worker)", len(primaries))
        self._executor = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="model-loader")
        self._futures = [self.request_load(m.name, on_demand=False) for m in primaries]
        remaining = [len(self._futures)]
        counter_lock = threading.Lock()

        def _one_done(_: Future[None]) -> None:
            with counter_lock:
                remaining[0] -= 1
                last = remaining[0] == 0
            if last:
                self._all_done()

        for f in self._futures:
            f.add_done_callback(_one_done)
        if not self._futures:
            self._all_done()

    def _all_done(self) -> None:
        self.finished_at = time.perf_counter()
        self.finished_wall = time.time()
        ready = sum(m.state is ModelState.READY for m in self.models.values())
        total = self.finished_at - (self.started_at or self.finished_at)
        log.info(
            "All models processed: %d/%d ready. Total Loading time: %.2f seconds",
            ready,
            len(self.models),
            total,
        )
        self._done.set()

    def _load_one(self, model: ManagedModel[H]) -> None:
        spec = model.spec
        warm = spec.warmup if spec.warmup is not None else self._warmup_default
        max_attempts = 1 + self.retries
        t0 = time.perf_counter()
        for attempt in range(1, max_attempts + 1):
            if self._stopping.is_set():
                self._set(model, ModelState.UNLOADED, error="server shut down before the model loaded")
                return
            self._set(model, ModelState.LOADING, attempts=attempt)
            self._startup_mark(model.name, "load_start")
            log.info("Loading model '%s' (%s), attempt %d/%d", spec.name, spec.backend, attempt, max_attempts)
            try:
                handle = self._within_timeout(spec, lambda: self._loader(spec))
                if handle is None:
                    raise RuntimeError("backend returned no model handle")
                if warm and self._warmup is not None:
                    self._warmup(handle)
            except _Stopped:
                self._set(model, ModelState.UNLOADED, error="server shut down before the model loaded")
                return
            except PermanentLoadError as exc:
                self._fail(model, t0, str(exc))
                return
            except Exception as exc:  # noqa: BLE001 - any backend failure is reported, not raised
                message = f"{type(exc).__name__}: {exc}"
                if attempt < max_attempts:
                    log.warning("Model '%s' failed to load (%s); retrying in %.1fs", spec.name, message,
                                self.retry_delay)
                    time.sleep(self.retry_delay)
                    continue
                self._fail(model, t0, message)
                return
            seconds = time.perf_counter() - t0
            self._set(model, ModelState.READY, handle=handle, load_seconds=seconds, error=None,
                      last_used=time.monotonic())
            log.info("Model '%s' ready%s. Loading time: %.2f seconds", spec.name,
                     " (warmed up)" if warm else "", seconds)
            return

    def _within_timeout(self, spec: ModelSpec, load: Callable[[], H]) -> H | None:
        """Run ``load`` in its own thread, waiting at most ``spec.load_timeout`` (and not past shutdown).

        A load can block for good (``open()`` on a FIFO named like a model): its thread is then left
        behind (a daemon) and the model fails, instead of the loader pool or shutdown hanging on it.
        """
        box: dict[str, Any] = {}
        done = threading.Event()

        def run() -> None:
            try:
                box["handle"] = load()
            except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread
                box["error"] = exc
            finally:
                done.set()

        threading.Thread(target=run, name=f"load-{spec.name}", daemon=True).start()
        deadline = time.monotonic() + spec.load_timeout
        while not done.wait(0.1):
            if self._stopping.is_set():
                raise _Stopped
            if time.monotonic() > deadline:
                raise PermanentLoadError(f"load timed out after {spec.load_timeout:g} s")
        if "error" in box:
            raise box["error"]
        return box.get("handle")

    def _set(self, model: ManagedModel[H], state: ModelState, **changes: Any) -> None:
        """Change a loaded model's state, and that of every name sharing it."""
        for m in (model, *self._aliases.get(model.name, ())):
            m.set_state(state, **changes)
        if state in (ModelState.READY, ModelState.FAILED):
            self._startup_mark(model.name, "load_end")

    def _startup_mark(self, name: str, mark: str) -> None:
        """Record a start-up load's moment once (and for the names sharing the load); later loads don't."""
        if name in self.startup_loads and "load_end" in self.startup_loads[name]:
            return
        model = self.models[name]
        if model.on_demand:
            return
        for m in (model, *self._aliases.get(name, ())):
            self.startup_loads.setdefault(m.name, {}).setdefault(mark, time.time())

    def _fail(self, model: ManagedModel[H], t0: float, message: str) -> None:
        seconds = time.perf_counter() - t0
        self._set(model, ModelState.FAILED, error=message, load_seconds=seconds)
        log.error("Model '%s' failed to load: %s. Loading time: %.2f seconds", model.name, message, seconds)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until every load finished (ready or failed); for tests and tools."""
        return self._done.wait(timeout)

    # -- lifecycle: load on demand, unload, reload, idle unload ---------------------------------

    def primary(self, model: ManagedModel[H]) -> ManagedModel[H]:
        """The model that owns ``model``'s loaded handle (itself unless it is an alias)."""
        return self.models[model.shares_with] if model.shares_with else model

    def request_load(self, name: str, on_demand: bool = True) -> Future[None]:
        """Start loading ``name`` unless it is ready or already loading; the future ends with the load."""
        model = self.primary(self.models[name])
        with self._lifecycle:
            if self._stopping.is_set():
                raise ServerShuttingDown("the server is shutting down; no model loads now")
            current = self._loads.get(model.name)
            if current is not None and not current.done():
                return current
            done: Future[None] = Future()
            if model.state is ModelState.READY:
                done.set_result(None)
                return done
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="model-loader")
            for m in (model, *self._aliases.get(model.name, ())):
                m.on_demand = on_demand
                if not on_demand:
                    self._startup_mark(m.name, "queued")
            future = self._executor.submit(self._load_one, model)
            self._loads[model.name] = future
            return future

    def lease(self, model: ManagedModel[H]) -> Callable[[], None]:
        """Hold a ready model for one request; call the returned function when the request ends."""
        owner = self.primary(model)
        with self._lifecycle:
            owner.refs += 1
        released = False

        def release() -> None:
            nonlocal released
            if released:
                return
            released = True
            with self._lifecycle:
                owner.refs -= 1
                owner.last_used = time.monotonic()

        return release

    def unload(self, name: str) -> bool:
        """Free a ready model now; False (nothing done) while a request holds it. Raises
        ``LoadInProgress`` while it loads: the unload would be a no-op and the model end ready."""
        model = self.primary(self.models[name])
        with self._lifecycle:
            if model.state in (ModelState.PENDING, ModelState.LOADING):
                raise LoadInProgress(f"model '{name}' is loading; unload it once the load has ended "
                                     f"(POST /models/{name}/load waits for that)")
            if model.state is not ModelState.READY:
                return True
            if model.refs > 0 or model.guard.threads_inside:
                return False
            handle = model.handle
            self._set(model, ModelState.UNLOADED, handle=None, error=None)
        # No request holds it and new ones see "unloaded" (and load it again): safe to free.
        if handle is not None and self._release is not None:
            try:
                self._release(handle)
            except Exception:
                log.exception("error freeing model '%s'", model.name)
        # memory: drop our last reference, then hand the freed model's heap back to the OS
        handle = None
        release_model_memory()
        log.info("Model '%s' unloaded", model.name)
        return True

    def unload_idle(self) -> list[str]:
        """Unload every ready model with a ``keep_alive`` that has had no request for that long."""
        now = time.monotonic()
        idle = [m.name for m in (self.models[n] for n in self._aliases)
                if m.spec.keep_alive >= 0 and m.state is ModelState.READY and m.refs == 0
                and now - m.last_used >= m.spec.keep_alive]
        unloaded = [name for name in idle if self.unload(name)]
        for name in unloaded:
            log.info("Model '%s' was idle for %g s (keep_alive): unloaded", name, self.models[name].spec.keep_alive)
        return unloaded

    async def acquire(self, name: str | None) -> tuple[ManagedModel[H], Callable[[], None]]:
        """The ready model a request uses, held (never unloaded) until the returned release is called —
        within an HTTP request, at its end, automatically. A model that is not loaded (lazy, or
        unloaded when idle) is loaded now and waited for, up to ``on_demand_wait_seconds``;
        concurrent requests wait on the same load; the wait goes into the response's
        ``X-Model-Load-Wait-Seconds`` header."""
        model = self.lookup(name)
        if model.state is ModelState.UNLOADED or (model.on_demand and model.state is ModelState.LOADING):
            t0 = time.monotonic()
            future = self.request_load(model.name)
            try:
                await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(future)), self.on_demand_wait_seconds)
            except TimeoutError:
                raise ModelLoading(f"model '{model.name}' is still loading (on demand); retry shortly",
                                   retry_after=5) from None
            note_load_wait(time.monotonic() - t0)
        ready = self.get(model.name)
        release = self.lease(ready)
        at_request_end(release)
        return ready, release

    # -- lookup ------------------------------------------------------------------------------

    def default_for(self, accept: Callable[[ManagedModel[H]], bool] = lambda _: True) -> str | None:
        """The model a request without a name gets: the first *ready* accepted model, else the first
        accepted one (whose state then explains why it cannot serve)."""
        accepted = [m for m in self.models.values() if accept(m)]
        ready = next((m for m in accepted if m.state is ModelState.READY), None)
        chosen = ready or (accepted[0] if accepted else None)
        return chosen.name if chosen else None

    def lookup(self, name: str | None) -> ManagedModel[H]:
        """The model called ``name`` (default: see ``default_for``) whatever its state; 404 if unknown."""
        key = self.default_for() if name is None else name
        model = self.models.get(key) if key is not None else None
        if model is None:
            raise ModelNotFound(
                f"model '{echo(name)}' is not configured; available models: {', '.join(self.models) or '(none)'}",
                available=list(self.models),
            )
        note_model(model.name)
        return model

    def get(self, name: str | None) -> ManagedModel[H]:
        """The ready model called ``name`` (default: see ``default_for``), or a typed error."""
        model = self.lookup(name)
        state = model.state
        if state is ModelState.READY:
            return model
        if state in (ModelState.PENDING, ModelState.LOADING):
            raise ModelLoading(f"model '{model.name}' is still loading; retry shortly", retry_after=1)
        if state is ModelState.UNLOADED and model.error is None:
            raise ModelLoading(f"model '{model.name}' is not loaded; it loads on its next request", retry_after=1)
        reason = model.public_error(self.show_paths) or state.value
        raise ModelFailed(f"model '{model.name}' is unavailable: {reason}")

    def snapshot(self) -> dict[str, dict[str, Any]]:
        return {name: self.model_snapshot(name) for name in self.models}

    def model_snapshot(self, name: str) -> dict[str, Any]:
        """``name``'s public fields, with the share of its weight files in the page cache."""
        model = self.models[name]
        return {**model.snapshot(self.show_paths), "weights_resident": self._resident(self.primary(model))}

    def _resident(self, model: ManagedModel[H]) -> float | None:
        """The resident share of a ready model's mapped weights (this process's mappings, read at most
        twice a second for all models together: one read of /proc/self/smaps, ~1 ms)."""
        handle = model.handle
        if self._weights is None or handle is None or model.state is not ModelState.READY:
            return None
        now = time.monotonic()
        if now - self._mappings_read_at > 0.5:
            self._mappings = mapped_files()
            self._mappings_read_at = now
        fraction = resident_fraction(self._weights(handle), self._mappings)
        return None if fraction is None else round(fraction, 4)

    # -- shutdown ----------------------------------------------------------------------------

    def close(self) -> None:
        """Shut down without ever freeing a model that a thread is still inside.

        New calls are refused, running ones are asked to stop (``interrupt``: llama.cpp and
        faster-whisper stop at their next token or segment), pending loads are cancelled and
        running ones awaited; then each model is freed once no thread is inside it. A model still
        busy after ``drain_seconds`` is left to the process exit rather than freed under the call.
        """
        self._stopping.set()
        primaries = [self.models[name] for name in self._aliases]
        for m in primaries:
            m.guard.close()
            if m.handle is not None and self._interrupt is not None:
                if m.guard.threads_inside:
                    log.info("model '%s': interrupting its running call for shutdown", m.name)
                try:
                    self._interrupt(m.handle)
                except Exception:
                    log.exception("error interrupting model '%s'", m.name)
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
        for m in primaries:  # loads cancelled before they started
            if m.state is ModelState.PENDING:
                self._set(m, ModelState.UNLOADED, error="server shut down before the model loaded")
        deadline = time.monotonic() + self.drain_seconds
        for m in primaries:
            if not m.guard.wait_idle(max(0.0, deadline - time.monotonic())):
                log.warning("model '%s' is still running a call after %.0f s; not freeing it (the process exit "
                            "will)", m.name, self.drain_seconds)
                continue
            handle = m.handle
            if handle is not None and self._release is not None:
                try:
                    self._release(handle)
                except Exception:
                    log.exception("error freeing model '%s'", m.name)
            if m.state is ModelState.READY:
                self._set(m, ModelState.UNLOADED, handle=None)
