"""The model registry: the configured models by name, which share a handle, lookup, leases, unload.

Loading is ``model_loads.LoadRunner``'s job, holding models ``leases``' and observing them
(start-up marks, request notes) ``registry_events``' listeners'. ``registry_settings`` builds a
registry from a server's settings."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future
from contextlib import asynccontextmanager
from typing import Any, Generic

from serving_core.compute import ComputeSlots
from serving_core.errors import BadRequest, LoadInProgress, ModelFailed, ModelLoading, ModelNotFound, echo
from serving_core.leases import Lease, LeaseBook
from serving_core.managed_model import (
    H,
    HandleHook,
    Loader,
    ManagedModel,
    ModelHooks,
    ModelState,
    RegistryPolicy,
)
from serving_core.memory import release_model_memory
from serving_core.model_loads import LoadRunner
from serving_core.registry_events import EventKind, RegistryEvent, RegistryListener, StartupLoads, note_request
from serving_core.residency import WeightResidency
from serving_core.scheduling import ModelGuard
from serving_core.specs import ModelSpec

__all__ = ["H", "HandleHook", "Lease", "Loader", "ManagedModel", "ModelHooks", "ModelRegistry", "ModelState",
           "RegistryPolicy"]

log = logging.getLogger("serving_core.registry")

_EVENT_OF: dict[ModelState, EventKind] = {ModelState.LOADING: "loading", ModelState.READY: "ready",
                                         ModelState.FAILED: "failed", ModelState.UNLOADED: "unloaded"}


class ModelRegistry(Generic[H]):
    """Every configured model by name; ready ones are handed out as leases.

    ``hooks`` may be a bare loader (tests); ``compute`` is the server's one pool of compute slots."""

    def __init__(self, specs: list[ModelSpec], hooks: ModelHooks[H] | Loader[H],
                 policy: RegistryPolicy | None = None, *, compute: ComputeSlots | None = None,
                 listeners: tuple[RegistryListener, ...] = (note_request,)) -> None:
        self.hooks: ModelHooks[H] = hooks if isinstance(hooks, ModelHooks) else ModelHooks(loader=hooks)
        self.policy = policy or RegistryPolicy()
        self.compute = compute or ComputeSlots(1)
        self.models: dict[str, ManagedModel[H]] = {}
        # Names that configure the same backend, file and options share one loaded handle (and so
        # one guard): loading it once saves the load time and the memory of every extra copy.
        self._aliases: dict[str, list[ManagedModel[H]]] = {}
        first_with_key: dict[str, ManagedModel[H]] = {}
        for spec in specs:
            key = self.hooks.share_key(spec)
            primary = first_with_key.get(key) if self.policy.share_identical else None
            if primary is None:
                concurrency = self.hooks.concurrency(spec) if self.hooks.concurrency is not None else 1
                guard = ModelGuard(spec.name, self.policy.max_waiting, self.compute, concurrency)
                model: ManagedModel[H] = ManagedModel(spec=spec, guard=guard)
                first_with_key[key] = model
                self._aliases[spec.name] = []
            else:
                model = ManagedModel(spec=spec, guard=primary.guard, shares_with=primary.name)
                self._aliases[primary.name].append(model)
            self.models[spec.name] = model
        self.startup = StartupLoads()
        self.listeners: list[RegistryListener] = [self.startup, *listeners]
        self.residency = WeightResidency(self.hooks.weights)
        self.leases = LeaseBook()
        self.loads: LoadRunner[H] = LoadRunner(self.hooks, self.policy, len(self._aliases), self._set,
                                               self.leases.lock, self._set_progress)

    @property
    def show_paths(self) -> bool:
        return self.policy.show_paths

    def _emit(self, kind: EventKind, model: ManagedModel[H], load_wait_seconds: float = 0.0) -> None:
        event = RegistryEvent(kind, model, load_wait_seconds)
        for listener in tuple(self.listeners):  # a watcher may come or go meanwhile (/health/events)
            listener(event)

    def _set(self, model: ManagedModel[H], state: ModelState, **changes: Any) -> None:
        """Change a loaded model's state, and that of every name sharing it."""
        for m in (model, *self._aliases.get(model.name, ())):
            m.set_state(state, **changes)
            kind = _EVENT_OF.get(state)
            if kind is not None:
                self._emit(kind, m)

    def _set_progress(self, model: ManagedModel[H], fraction: float, phase: str | None) -> None:
        """A loading model's progress, for it and every name sharing it; an event when it moved."""
        for m in (model, *self._aliases.get(model.name, ())):
            if m.set_progress(fraction, phase):
                self._emit("progress", m)

    def primaries(self) -> list[ManagedModel[H]]:
        """The models that own a handle (every name but the aliases)."""
        return [self.models[name] for name in self._aliases]

    def primary(self, model: ManagedModel[H]) -> ManagedModel[H]:
        """The model that owns ``model``'s loaded handle (itself unless it is an alias)."""
        return self.models[model.shares_with] if model.shares_with else model

    # -- loading -----------------------------------------------------------------------------

    @property
    def started(self) -> bool:
        return self.loads.started_at is not None

    def start_loading(self) -> None:
        """Submit every eager model's load and return at once (a second call does nothing). Lazy models
        stay ``unloaded`` until their first request."""
        with self.leases.lock:
            if self.loads.started_at is not None:
                return
            self.loads.started_at = time.perf_counter()
        for model in self.primaries():
            if model.spec.load == "lazy":
                self._set(model, ModelState.UNLOADED, error=None)
                log.info("Model '%s' loads on its first request (load: lazy)", model.name)
        for name, aliases in self._aliases.items():
            for alias in aliases:
                log.info("Model '%s' shares the loaded model of '%s' (same backend, file and options)",
                         alias.name, name)
        eager = [m for m in self.primaries() if m.spec.load == "eager"]
        self.loads.start(eager, lambda m: self.request_load(m.name, on_demand=False), list(self.models.values()))

    def wait(self, timeout: float | None = None) -> bool:
        """Block until every start-up load finished (ready or failed); for tests and tools."""
        return self.loads.wait(timeout)

    def request_load(self, name: str, on_demand: bool = True) -> Future[None]:
        """Start loading ``name`` unless it is ready or already loading; the future ends with the load."""
        model = self.primary(self.models[name])

        def mark() -> None:
            for m in (model, *self._aliases.get(model.name, ())):
                m.on_demand = on_demand
                self._emit("queued", m)

        return self.loads.submit(model, before=mark)

    # -- leases ------------------------------------------------------------------------------

    async def acquire(self, name: str | None) -> Lease[H]:
        """A lease on the ready model ``name`` (default: see ``default_for``); the caller releases it
        (``lease.release()``, or ``async with``; see ``using``). A model that is not loaded (lazy, or
        unloaded when idle) is loaded now and waited for, up to ``on_demand_wait_seconds``;
        concurrent requests wait on the same load."""
        model = self.lookup(name)
        waited = 0.0
        if model.state in (ModelState.UNLOADED, ModelState.SLEEPING) or (
                model.on_demand and model.state is ModelState.LOADING):
            t0 = time.monotonic()
            future = self.request_load(model.name)
            try:
                await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(future)),
                                       self.policy.on_demand_wait_seconds)
            except TimeoutError:
                raise ModelLoading(f"model '{model.name}' is still loading (on demand); retry shortly",
                                   retry_after=5) from None
            waited = time.monotonic() - t0
            self._emit("waited", model, waited)  # the wait is reported even if the load failed
        with self.leases.lock:  # no unload between "it is ready" and "it is held"
            ready = self.get(model.name)
            self._emit("leased", ready, waited)
            return self.leases.take(ready, self.primary(ready), waited)

    @asynccontextmanager
    async def using(self, name: str | None) -> AsyncIterator[Lease[H]]:
        """``async with registry.using(name) as lease:`` — the model is held for the block."""
        lease = await self.acquire(name)
        try:
            yield lease
        finally:
            lease.release()

    # -- unload ------------------------------------------------------------------------------

    def unload(self, name: str) -> bool:
        """Free a ready model now; False (nothing done) while a lease or a call holds it. Raises
        ``LoadInProgress`` while it loads: the unload would be a no-op and the model end ready."""
        model = self.primary(self.models[name])
        with self.leases.lock:
            if model.state in (ModelState.PENDING, ModelState.LOADING):
                raise LoadInProgress(f"model '{name}' is loading; unload it once the load has ended "
                                     f"(POST /models/{name}/load waits for that)")
            if model.state is ModelState.SLEEPING:  # what it kept goes too
                handle = model.asleep
            elif model.state is not ModelState.READY:
                return True
            elif model.refs > 0 or model.guard.threads_inside:
                return False
            else:
                handle = model.handle
            self._set(model, ModelState.UNLOADED, handle=None, asleep=None, sleep_level=None, error=None)
        # No lease holds it and new requests see "unloaded" (and load it again): safe to free.
        self._release(model, handle)
        # memory: drop our last reference, then hand the freed model's heap back to the OS
        handle = None
        release_model_memory()
        log.info("Model '%s' unloaded", model.name)
        return True

    def sleep(self, name: str, level: int) -> bool:
        """Put a ready model to sleep (``ModelHooks.sleep``): it keeps its handle, frees memory, and
        wakes on its next request (or ``request_load``). False while a lease or a call holds it;
        ``BadRequest`` for a backend that cannot sleep; a sleeping model can go deeper; nothing to do
        for a model that is not loaded."""
        if self.hooks.sleep is None:
            raise BadRequest(f"model '{name}' ({self.models[name].spec.backend}) cannot sleep; unload it instead "
                             f"(POST /models/{name}/unload)")
        model = self.primary(self.models[name])
        with self.leases.lock:
            if model.state in (ModelState.PENDING, ModelState.LOADING):
                raise LoadInProgress(f"model '{name}' is loading; put it to sleep once the load has ended")
            if model.state is ModelState.SLEEPING:
                if (model.sleep_level or 0) >= level:
                    return True
                handle = model.asleep
            elif model.state is ModelState.READY:
                if model.refs > 0 or model.guard.threads_inside:
                    return False
                handle = model.handle
            else:
                return True  # unloaded or failed: nothing held
            # From here no request sees it ready: it wakes (a load) on the next one, which waits for
            # this lock, so never beside the sleep itself.
            self._set(model, ModelState.SLEEPING, handle=None, asleep=handle, sleep_level=level, error=None)
            if handle is not None:
                self.hooks.sleep(handle, level)
        release_model_memory()
        log.info("Model '%s' asleep (level %d)", model.name, level)
        return True

    def _release(self, model: ManagedModel[H], handle: H | None) -> None:
        if handle is not None and self.hooks.release is not None:
            try:
                self.hooks.release(handle)
            except Exception:
                log.exception("error freeing model '%s'", model.name)

    def unload_idle(self) -> list[str]:
        """Unload (or, with ``on_idle: sleep``, put to sleep) every ready model with a ``keep_alive``
        that has had no request for that long."""
        done = []
        for name in self.leases.idle(self.primaries()):
            asleep = self.models[name].spec.on_idle == "sleep" and self.hooks.sleep is not None
            if self.sleep(name, 1) if asleep else self.unload(name):
                done.append(name)
                log.info("Model '%s' was idle for %g s (keep_alive): %s", name, self.models[name].keep_alive,
                         "asleep" if asleep else "unloaded")
        return done

    # -- lookup ------------------------------------------------------------------------------

    def default_for(self, accept: Callable[[ManagedModel[H]], bool] = lambda _: True) -> str | None:
        """The model a request without a name gets: the first *ready* accepted model, else the first
        accepted one (whose state then explains why it cannot serve)."""
        accepted = [m for m in self.models.values() if accept(m)]
        ready = next((m for m in accepted if m.state is ModelState.READY), None)
        chosen = ready or (accepted[0] if accepted else None)
        return chosen.name if chosen else None

    def default_ready(self, accept: Callable[[H], bool]) -> str | None:
        """The first ready model whose loaded handle ``accept`` takes; None when none does (a request
        without a name then gets the usual default, whose state says why it cannot serve)."""
        for model in self.models.values():
            handle = self.primary(model).handle
            if model.state is ModelState.READY and handle is not None and accept(handle):
                return model.name
        return None

    def lookup(self, name: str | None) -> ManagedModel[H]:
        """The model called ``name`` (default: see ``default_for``) whatever its state; 404 if unknown."""
        key = self.default_for() if name is None else name
        model = self.models.get(key) if key is not None else None
        if model is None:
            raise ModelNotFound(
                f"model '{echo(name)}' is not configured; available models: {', '.join(self.models) or '(none)'}",
                available=list(self.models),
            )
        self._emit("looked_up", model)
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
        if state is ModelState.SLEEPING:
            raise ModelLoading(f"model '{model.name}' is asleep; it wakes on its next request", retry_after=1)
        reason = model.public_error(self.show_paths) or state.value
        raise ModelFailed(f"model '{model.name}' is unavailable: {reason}")

    def snapshot(self) -> dict[str, dict[str, Any]]:
        return {name: self.model_snapshot(name) for name in self.models}

    def model_snapshot(self, name: str) -> dict[str, Any]:
        """``name``'s public fields, with the share of its weight files in the page cache."""
        model = self.models[name]
        owner = self.primary(model)
        handle = owner.handle if owner.state is ModelState.READY else None
        described = self.hooks.describe(handle) if handle is not None and self.hooks.describe is not None else {}
        return {**model.snapshot(self.show_paths), "weights_resident": self.residency.of(handle), **described}

    # -- shutdown ----------------------------------------------------------------------------

    def close(self) -> None:
        """Shut down without ever freeing a model that a thread is still inside.

        New calls are refused, running ones are asked to stop (``interrupt``: llama.cpp and
        faster-whisper before its next encode or decode step), pending loads are cancelled and
        running ones awaited; then each model is freed once no thread is inside it. A model still
        busy after ``drain_seconds`` is left to the process exit rather than freed under the call.
        """
        self.loads.stopping.set()
        primaries = self.primaries()
        interrupt = self.hooks.interrupt
        for m in primaries:
            m.guard.close()
            if m.handle is not None and interrupt is not None:
                if m.guard.threads_inside:
                    log.info("model '%s': interrupting its running call for shutdown", m.name)
                try:
                    interrupt(m.handle)
                except Exception:
                    log.exception("error interrupting model '%s'", m.name)
        self.loads.stop()
        for m in primaries:  # loads cancelled before they started
            if m.state is ModelState.PENDING:
                self._set(m, ModelState.UNLOADED, error="server shut down before the model loaded")
        drain_seconds = self.policy.drain_seconds
        deadline = time.monotonic() + drain_seconds
        for m in primaries:
            if not m.guard.wait_idle(max(0.0, deadline - time.monotonic())):
                log.warning("model '%s' is still running a call after %.0f s; not freeing it (the process exit "
                            "will)", m.name, drain_seconds)
                continue
            self._release(m, m.handle if m.handle is not None else m.asleep)
            if m.state is ModelState.READY:
                self._set(m, ModelState.UNLOADED, handle=None)
