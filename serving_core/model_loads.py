"""Loading models: a thread pool, one quick retry, a per-load timeout, the start-up timing logs.

``LoadRunner`` runs loads and reports each state change through ``set_state``; which models
exist, who shares a handle and who may be freed is the registry's business.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Generic, Protocol

from serving_core.errors import PermanentLoadError, ServerShuttingDown
from serving_core.load_progress import reporting_to
from serving_core.managed_model import H, ManagedModel, ModelHooks, ModelState, RegistryPolicy
from serving_core.specs import ModelSpec

log = logging.getLogger("serving_core.registry")


class _Stopped(Exception):
    """The server began shutting down while a load was running."""


class SetState(Protocol):
    def __call__(self, model: ManagedModel[Any], state: ModelState, **changes: Any) -> None: ...


class SetProgress(Protocol):
    def __call__(self, model: ManagedModel[Any], fraction: float, phase: str | None) -> None: ...


class LoadRunner(Generic[H]):
    """Loads models in a pool of ``policy.workers`` threads, each load in its own thread bounded by the
    spec's ``load_timeout``; concurrent requests for one model's load share it."""

    def __init__(self, hooks: ModelHooks[H], policy: RegistryPolicy, n_models: int, set_state: SetState,
                 lock: threading.RLock, set_progress: SetProgress | None = None) -> None:
        self._hooks = hooks
        self._policy = policy
        self._set = set_state
        self._progress = set_progress
        self._lock = lock  # the registry's decision lock (a load never starts beside an unload)
        self.workers = policy.workers or max(1, n_models)
        self._executor: ThreadPoolExecutor | None = None
        self._loads: dict[str, Future[None]] = {}
        self.stopping = threading.Event()
        self.started_at: float | None = None
        self.finished_at: float | None = None
        self.finished_wall: float | None = None  # time.time() when every start-up load had ended
        self._done = threading.Event()

    # -- start-up ----------------------------------------------------------------------------

    def start(self, eager: Sequence[ManagedModel[H]], submit: Callable[[ManagedModel[H]], Future[None]],
              every_model: Sequence[ManagedModel[H]]) -> None:
        """Submit the start-up loads (through ``submit``, the registry's ``request_load``) and return;
        ``every_model`` (aliases included) is what the closing log line counts."""
        if len(eager) == 1:
            log.info("PERFORMANCE: Loading 1 model in the background")
        elif self.workers > 1:
            log.info("PERFORMANCE: Using parallel model loading (%d workers for %d models)",
                     min(self.workers, len(eager)), len(eager))
        else:
            log.info("PERFORMANCE: Using sequential model loading (%d models, 1 worker)", len(eager))
        self._pool()
        futures = [submit(m) for m in eager]
        remaining = [len(futures)]
        counter_lock = threading.Lock()

        def one_done(_: Future[None]) -> None:
            with counter_lock:
                remaining[0] -= 1
                last = remaining[0] == 0
            if last:
                self._all_done(every_model)

        for f in futures:
            f.add_done_callback(one_done)
        if not futures:
            self._all_done(every_model)

    def _all_done(self, every_model: Sequence[ManagedModel[H]]) -> None:
        self.finished_at = time.perf_counter()
        self.finished_wall = time.time()
        ready = sum(m.state is ModelState.READY for m in every_model)
        total = self.finished_at - (self.started_at or self.finished_at)
        log.info("All models processed: %d/%d ready. Total Loading time: %.2f seconds", ready, len(every_model),
                 total)
        self._done.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until every start-up load ended (ready or failed); for tests and tools."""
        return self._done.wait(timeout)

    # -- one load ----------------------------------------------------------------------------

    def _pool(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="model-loader")
        return self._executor

    def submit(self, model: ManagedModel[H], before: Callable[[], None] = lambda: None) -> Future[None]:
        """Start loading ``model`` unless it is ready or loading; the future ends with the load.
        ``before`` runs (under the lock) only when a load is really submitted."""
        with self._lock:
            if self.stopping.is_set():
                raise ServerShuttingDown("the server is shutting down; no model loads now")
            current = self._loads.get(model.name)
            if current is not None and not current.done():
                return current
            if model.state is ModelState.READY:
                done: Future[None] = Future()
                done.set_result(None)
                return done
            before()
            future = self._pool().submit(self._load, model)
            self._loads[model.name] = future
            return future

    def _load(self, model: ManagedModel[H]) -> None:
        asleep = model.asleep if model.state is ModelState.SLEEPING else None
        if asleep is not None and self._hooks.wake is not None:
            self._wake(model, asleep, self._hooks.wake)
            return
        spec = model.spec
        warm = spec.warmup if spec.warmup is not None else self._policy.warmup_default
        max_attempts = 1 + self._policy.retries
        t0 = time.perf_counter()
        for attempt in range(1, max_attempts + 1):
            if self.stopping.is_set():
                self._set(model, ModelState.UNLOADED, error="server shut down before the model loaded")
                return
            self._set(model, ModelState.LOADING, attempts=attempt)
            log.info("Loading model '%s' (%s), attempt %d/%d", spec.name, spec.backend, attempt, max_attempts)
            try:
                handle = self._within_timeout(spec, lambda: self._reporting(model, lambda: self._hooks.loader(spec)))
                if handle is None:
                    raise RuntimeError("backend returned no model handle")
                if warm and self._hooks.warmup is not None:
                    self._hooks.warmup(handle)
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
                                self._policy.retry_delay)
                    time.sleep(self._policy.retry_delay)
                    continue
                self._fail(model, t0, message)
                return
            seconds = time.perf_counter() - t0
            self._set(model, ModelState.READY, handle=handle, load_seconds=seconds, error=None,
                      last_used=time.monotonic())
            log.info("Model '%s' ready%s. Loading time: %.2f seconds", spec.name,
                     " (warmed up)" if warm else "", seconds)
            return

    def _wake(self, model: ManagedModel[H], asleep: H, wake: Callable[[H], H]) -> None:
        """A sleeping model made whole again: its backend's ``wake`` instead of a load (no retries: a
        model that cannot wake has lost what it kept, and fails like a load)."""
        t0 = time.perf_counter()
        self._set(model, ModelState.LOADING, attempts=model.attempts)
        log.info("Waking model '%s' (asleep at level %s)", model.name, model.sleep_level)
        try:
            handle = self._within_timeout(model.spec, lambda: self._reporting(model, lambda: wake(asleep)))
        except _Stopped:
            return  # shutdown: it stays as it is, freed with the others
        except Exception as exc:  # noqa: BLE001 - reported like a failed load
            self._set(model, ModelState.LOADING, asleep=None)
            if self._hooks.release is not None:
                self._hooks.release(asleep)
            self._fail(model, t0, f"could not wake: {type(exc).__name__}: {exc}")
            return
        seconds = time.perf_counter() - t0
        self._set(model, ModelState.READY, handle=handle, asleep=None, sleep_level=None, error=None,
                  last_used=time.monotonic())
        log.info("Model '%s' awake. Waking time: %.3f seconds", model.name, seconds)

    def _reporting(self, model: ManagedModel[H], load: Callable[[], H]) -> H:
        """``load()`` (the backend's loader, or its wake), its ``load_progress.report`` calls going to
        this model."""
        progress = self._progress
        if progress is None:
            return load()
        with reporting_to(lambda fraction, phase: progress(model, fraction, phase)):
            return load()

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
            if self.stopping.is_set():
                raise _Stopped
            if time.monotonic() > deadline:
                raise PermanentLoadError(f"load timed out after {spec.load_timeout:g} s")
        if "error" in box:
            raise box["error"]
        return box.get("handle")

    def _fail(self, model: ManagedModel[H], t0: float, message: str) -> None:
        seconds = time.perf_counter() - t0
        self._set(model, ModelState.FAILED, error=message, load_seconds=seconds)
        log.error("Model '%s' failed to load: %s. Loading time: %.2f seconds", model.name, message, seconds)

    # -- shutdown ----------------------------------------------------------------------------

    def stop(self) -> None:
        """No new loads; pending ones are cancelled and running ones awaited (they see ``stopping``)."""
        self.stopping.set()
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
