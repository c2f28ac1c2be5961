"""Unit tests of the loading core's registry (no real model: the loader is what's under test)."""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import pytest

from serving_core.errors import ModelFailed, ModelLoading, ModelNotFound, PermanentLoadError
from serving_core.registry import ModelHooks, ModelRegistry, ModelState, RegistryPolicy
from serving_core.specs import ModelSpec

_HOOKS = {"warmup", "release", "interrupt", "share_key", "weights", "sleep", "wake"}


def specs(*names: str) -> list[ModelSpec]:
    return [ModelSpec(name=n, backend="test", path=f"/models/{n}") for n in names]


def registry(model_specs: list[ModelSpec], loader: Any, **options: Any) -> ModelRegistry[Any]:
    """A registry with ``options`` sorted into the backend's hooks and the registry's policy."""
    hooks = ModelHooks(loader=loader, **{k: v for k, v in options.items() if k in _HOOKS})
    return ModelRegistry(model_specs, hooks, RegistryPolicy(**{k: v for k, v in options.items() if k not in _HOOKS}))


def test_parallel_loads_really_overlap() -> None:
    # Each load waits on a barrier that only opens when all three loads are inside the loader
    # at once: sequential loading would time out the barrier and fail every model.
    barrier = threading.Barrier(3, timeout=10)

    def loader(spec: ModelSpec) -> str:
        barrier.wait()
        return spec.name

    reg = registry(specs("a", "b", "c"), loader, retries=0)
    reg.start_loading()
    assert reg.wait(20)
    assert {n: s["state"] for n, s in reg.snapshot().items()} == {"a": "ready", "b": "ready", "c": "ready"}
    assert reg.get("b").handle == "b"


def test_one_worker_loads_sequentially() -> None:
    active = 0
    peak = 0
    lock = threading.Lock()

    def loader(spec: ModelSpec) -> str:
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
        time.sleep(0.05)
        with lock:
            active -= 1
        return spec.name

    reg = registry(specs("a", "b", "c"), loader, workers=1)
    reg.start_loading()
    assert reg.wait(20)
    assert peak == 1
    assert all(s["state"] == "ready" for s in reg.snapshot().values())


def test_start_loading_returns_before_models_are_ready() -> None:
    gate = threading.Event()
    reg = registry(specs("slow"), lambda s: gate.wait(10) and "h")
    reg.start_loading()
    assert reg.models["slow"].state in (ModelState.PENDING, ModelState.LOADING)
    with pytest.raises(ModelLoading) as exc:
        reg.get("slow")
    assert exc.value.status_code == 503 and exc.value.headers()["Retry-After"] == "1"
    gate.set()
    assert reg.wait(10)
    assert reg.get("slow").handle == "h"


def test_transient_failure_is_retried_once() -> None:
    calls: list[float] = []

    def flaky(spec: ModelSpec) -> str:
        calls.append(time.perf_counter())
        if len(calls) == 1:
            raise OSError("disk hiccup")
        return "ok"

    reg = registry(specs("m"), flaky, retries=1, retry_delay=0.2)
    reg.start_loading()
    assert reg.wait(10)
    snap = reg.snapshot()["m"]
    assert snap["state"] == "ready" and snap["attempts"] == 2
    assert calls[1] - calls[0] >= 0.2


def test_retries_are_bounded_and_error_is_reported() -> None:
    attempts = []

    def broken(spec: ModelSpec) -> str:
        attempts.append(1)
        raise RuntimeError("boom")

    reg = registry(specs("m"), broken, retries=1, retry_delay=0.0)
    reg.start_loading()
    assert reg.wait(10)
    assert len(attempts) == 2
    snap = reg.snapshot()["m"]
    assert snap["state"] == "failed" and "RuntimeError: boom" in snap["error"]
    with pytest.raises(ModelFailed) as exc:
        reg.get("m")
    assert "boom" in exc.value.message


def test_permanent_failure_is_not_retried() -> None:
    attempts = []

    def missing(spec: ModelSpec) -> str:
        attempts.append(1)
        raise PermanentLoadError("model file not found: /nope.gguf")

    reg = registry(specs("m"), missing, retries=3, retry_delay=0.0)
    reg.start_loading()
    assert reg.wait(10)
    assert len(attempts) == 1
    assert reg.snapshot()["m"]["error"] == "model file not found: /nope.gguf"


def loaded_with_one_failure(names: tuple[str, ...], bad: str, message: str) -> ModelRegistry:
    """A registry of ``names`` that finished loading, where ``bad`` failed permanently with ``message``."""
    def loader(spec: ModelSpec) -> str:
        if spec.name == bad:
            raise PermanentLoadError(message)
        return spec.name

    reg = registry(specs(*names), loader)
    reg.start_loading()
    assert reg.wait(10)
    return reg


def test_failure_is_isolated_from_other_models() -> None:
    reg = loaded_with_one_failure(("good1", "bad", "good2"), "bad", "corrupt")
    assert reg.get("good1").handle == "good1"
    assert reg.get("good2").handle == "good2"
    with pytest.raises(ModelFailed):
        reg.get("bad")


def test_a_model_is_usable_while_another_still_loads() -> None:
    gate = threading.Event()

    def loader(spec: ModelSpec) -> str:
        if spec.name == "slow":
            gate.wait(10)
        return spec.name

    reg = registry(specs("fast", "slow"), loader)
    reg.start_loading()
    deadline = time.monotonic() + 10
    while reg.models["fast"].state is not ModelState.READY and time.monotonic() < deadline:
        time.sleep(0.01)
    assert reg.get("fast").handle == "fast"
    with pytest.raises(ModelLoading):
        reg.get("slow")
    gate.set()
    assert reg.wait(10)


def test_unknown_model_lists_available_names_and_default_is_first() -> None:
    reg = registry(specs("alpha", "beta"), lambda s: s.name)
    reg.start_loading()
    assert reg.wait(10)
    with pytest.raises(ModelNotFound) as exc:
        reg.get("gamma")
    assert exc.value.status_code == 404
    assert "alpha" in exc.value.message and "beta" in exc.value.message
    assert reg.get(None).name == "alpha"


def test_state_transitions_are_timestamped_in_order() -> None:
    reg = registry(specs("m"), lambda s: time.sleep(0.02) or "h")
    reg.start_loading()
    assert reg.wait(10)
    t = reg.models["m"].transitions
    assert t["pending"] <= t["loading"] <= t["ready"]
    assert reg.snapshot()["m"]["load_seconds"] >= 0.02


def test_warmup_runs_before_ready_only_when_enabled() -> None:
    warmed: list[str] = []
    reg = registry(
        [ModelSpec(name="w", backend="t", path="w", warmup=True), ModelSpec(name="nw", backend="t", path="nw")],
        lambda s: s.name, warmup=warmed.append, warmup_default=False,
    )
    reg.start_loading()
    assert reg.wait(10)
    assert warmed == ["w"]


def test_failing_warmup_fails_the_model() -> None:
    def bad_warmup(handle: str) -> None:
        raise RuntimeError("first inference crashed")

    reg = registry(specs("m"), lambda s: "h", warmup=bad_warmup, warmup_default=True, retries=0)
    reg.start_loading()
    assert reg.wait(10)
    assert "first inference crashed" in reg.snapshot()["m"]["error"]


def test_close_releases_handles() -> None:
    released: list[str] = []
    reg = registry(specs("a", "b"), lambda s: s.name, release=released.append)
    reg.start_loading()
    assert reg.wait(10)
    reg.close()
    assert sorted(released) == ["a", "b"]
    assert all(s["state"] == "unloaded" for s in reg.snapshot().values())


def test_identical_specs_share_one_load_and_one_guard() -> None:
    loads: list[str] = []
    released: list[str] = []

    def loader(spec: ModelSpec) -> str:
        loads.append(spec.name)
        return f"handle-of-{spec.name}"

    same = {"backend": "t", "path": "/m.gguf", "options": {"n_ctx": 64}}
    reg = registry(
        [ModelSpec(name="a", **same), ModelSpec(name="b", **same), ModelSpec(name="c", backend="t", path="/m.gguf")],
        loader, release=released.append,
    )
    reg.start_loading()
    assert reg.wait(10)
    assert sorted(loads) == ["a", "c"]  # "b" is never loaded on its own
    assert reg.get("b").handle == "handle-of-a" and reg.get("b").guard is reg.get("a").guard
    assert reg.get("c").guard is not reg.get("a").guard  # other options: a model of its own
    snap = reg.snapshot()
    assert snap["b"]["state"] == "ready" and snap["b"]["shares_with"] == "a" and snap["a"]["shares_with"] is None
    reg.close()
    assert sorted(released) == ["handle-of-a", "handle-of-c"]  # the shared handle is freed once


def test_sharing_can_be_switched_off_and_failures_propagate() -> None:
    same = {"backend": "t", "path": "/m.gguf"}

    def broken(spec: ModelSpec) -> str:
        raise PermanentLoadError("gone")

    reg = registry([ModelSpec(name="a", **same), ModelSpec(name="b", **same)], broken)
    reg.start_loading()
    assert reg.wait(10)
    assert reg.snapshot()["b"]["state"] == "failed" and reg.snapshot()["b"]["error"] == "gone"
    loads: list[str] = []
    reg = registry([ModelSpec(name="a", **same), ModelSpec(name="b", **same)],
                        lambda s: loads.append(s.name) or s.name, share_identical=False)
    reg.start_loading()
    assert reg.wait(10)
    assert sorted(loads) == ["a", "b"]


def test_default_is_the_first_ready_model_when_the_first_configured_failed() -> None:
    reg = loaded_with_one_failure(("broken", "good", "other"), "broken",
                                  "model file not found: /srv/secret/models/broken.gguf")
    assert reg.get(None).name == "good"
    assert reg.default_for(lambda m: m.name != "good") == "other"
    # Nothing accepted is ready: the first accepted one is named, so its error explains why.
    assert reg.default_for(lambda m: m.name == "broken") == "broken"
    with pytest.raises(ModelFailed):
        reg.get("broken")


def test_client_facing_errors_hide_server_paths_unless_asked() -> None:
    def loader(spec: ModelSpec) -> str:
        raise PermanentLoadError(f"model file not found: /srv/secret/models/{spec.name}.gguf")

    hidden = registry(specs("m"), loader)
    shown = registry(specs("m"), loader, show_paths=True)
    for reg in (hidden, shown):
        reg.start_loading()
        assert reg.wait(10)
    assert hidden.snapshot()["m"]["error"] == "model file not found: m.gguf"
    with pytest.raises(ModelFailed) as exc:
        hidden.get("m")
    assert "/srv/secret" not in exc.value.message and "m.gguf" in exc.value.message
    assert shown.snapshot()["m"]["error"] == "model file not found: /srv/secret/models/m.gguf"
    assert hidden.models["m"].error == "model file not found: /srv/secret/models/m.gguf"  # kept for the log


def test_unknown_model_name_is_echoed_cut_short() -> None:
    reg = registry(specs("alpha"), lambda s: s.name)
    reg.start_loading()
    assert reg.wait(10)
    with pytest.raises(ModelNotFound) as exc:
        reg.get("x" * 10_000)
    assert len(exc.value.message) < 300 and "10000 characters" in exc.value.message


def _close_during_call(reg: ModelRegistry, call, inside: threading.Event, after_close=lambda: None) -> None:
    """Start ``call`` in model "m", close the registry once the call is inside, then let it end."""
    import asyncio

    reg.start_loading()
    assert reg.wait(10)

    async def main() -> None:
        model = reg.get("m")
        running = asyncio.create_task(model.guard.run(call, model.handle))
        await asyncio.to_thread(inside.wait, 10)
        await asyncio.to_thread(reg.close)
        after_close()
        await running

    asyncio.run(main())


def test_close_interrupts_and_frees_a_model_only_after_its_call_left() -> None:
    """The shutdown crash: a model must never be freed while a thread is inside it."""
    inside = threading.Event()
    stop = threading.Event()
    events: list[str] = []

    def call(handle: str) -> str:
        inside.set()
        stop.wait(10)  # a long decode, until interrupted
        events.append("call left")
        return handle

    reg = registry(specs("m"), lambda s: s.name, release=lambda h: events.append("released"),
                        interrupt=lambda h: (events.append("interrupted"), stop.set()))
    _close_during_call(reg, call, inside)
    assert events == ["interrupted", "call left", "released"]


def test_close_leaves_a_model_that_will_not_stop_unfreed() -> None:
    inside = threading.Event()
    done = threading.Event()
    released: list[str] = []
    freed_during_call: list[bool] = []

    def stubborn(handle: str) -> None:
        inside.set()
        done.wait(10)  # ignores interrupts

    def after_close() -> None:
        freed_during_call.append(bool(released))  # still inside after the drain time: not freed
        done.set()

    reg = registry(specs("m"), lambda s: s.name, release=released.append, drain_seconds=0.1)
    _close_during_call(reg, stubborn, inside, after_close)
    assert freed_during_call == [False]


@pytest.mark.parametrize(("names", "workers", "line"), [
    (("only",), None, "PERFORMANCE: Loading 1 model in the background"),
    (("a", "b", "c"), None, "PERFORMANCE: Using parallel model loading (3 workers for 3 models)"),
    (("a", "b"), 1, "PERFORMANCE: Using sequential model loading (2 models, 1 worker)"),
])
def test_the_loading_line_says_what_happens(caplog, names, workers, line) -> None:
    import logging

    caplog.set_level(logging.INFO, logger="serving_core.registry")
    reg = registry(specs(*names), lambda s: s.name, workers=workers)
    reg.start_loading()
    assert reg.wait(10)
    assert line in caplog.text
    assert caplog.text.count("PERFORMANCE:") == 1


def test_loaded_handle_of_an_unloaded_model_is_a_typed_error():
    from serving_core.errors import ModelFailed

    reg = registry(specs("m"), lambda s: "h", release=lambda h: None)
    reg.start_loading()
    assert reg.wait(5)
    assert reg.get("m").loaded == "h"
    assert reg.unload("m")
    with pytest.raises(ModelFailed, match="'m' is not loaded"):
        _ = reg.models["m"].loaded
    reg.close()


def test_health_reports_how_much_of_a_ready_models_mapped_weights_is_resident(tmp_path):
    import mmap

    weights = tmp_path / "weights.bin"
    weights.write_bytes(os.urandom(1 << 20))
    with weights.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
        reg = registry(specs("m", "other"), lambda s: s.name, weights=lambda h: [weights] if h == "m" else [])
        assert reg.snapshot()["m"]["weights_resident"] is None  # not loaded yet
        reg.start_loading()
        assert reg.wait(5)
        assert reg.snapshot()["m"]["weights_resident"] == 0.0  # mapped, no page touched yet
        assert bytes(mapped[:]) == weights.read_bytes()  # touch every page
        time.sleep(0.6)  # read at most twice a second
        assert reg.snapshot()["m"]["weights_resident"] == 1.0
        assert reg.snapshot()["other"]["weights_resident"] is None  # nothing mapped
        reg.close()


def test_a_lease_is_released_by_its_holder_also_outside_any_request() -> None:
    # No HTTP request, no middleware: the holder alone decides when the model may be freed.
    import asyncio

    reg = registry(specs("m"), lambda s: s.name)
    reg.start_loading()
    assert reg.wait(10)

    async def main() -> tuple[bool, int, bool, int]:
        lease = await reg.acquire("m")
        refused_while_held = not reg.unload("m")
        lease.release()
        lease.release()  # a second release changes nothing
        refs_after = reg.models["m"].refs
        with pytest.raises(RuntimeError):
            async with reg.using("m"):
                raise RuntimeError("the holder failed")
        return refused_while_held, refs_after, reg.unload("m"), reg.models["m"].refs

    refused_while_held, refs_after, unloaded, refs_end = asyncio.run(main())
    assert refused_while_held and refs_after == 0 and unloaded and refs_end == 0
    assert reg.models["m"].state is ModelState.UNLOADED
    reg.close()


def test_the_closing_loading_line_counts_every_name_sharing_a_load(caplog) -> None:
    # The operators' "All models processed: N/M ready" line: two names on one file are two ready models.
    caplog.set_level("INFO", logger="serving_core.registry")
    same = {"backend": "t", "path": "/m.gguf"}
    reg = registry([ModelSpec(name="a", **same), ModelSpec(name="b", **same)], lambda s: s.name)
    reg.start_loading()
    assert reg.wait(10)
    assert "All models processed: 2/2 ready." in caplog.text
    reg.close()


class Sleeper:
    """A handle that records what sleep and wake did to it."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def sleep(self, level: int) -> None:
        self.calls.append(f"sleep {level}")

    def wake(self) -> Sleeper:
        self.calls.append("wake")
        return self


def sleeping_registry() -> tuple[ModelRegistry[Any], Sleeper]:
    handle = Sleeper()
    reg = registry(specs("m"), lambda spec: handle, sleep=Sleeper.sleep, wake=Sleeper.wake)
    reg.start_loading()
    assert reg.wait(10)
    return reg, handle


def test_a_sleeping_model_keeps_its_handle_and_wakes_on_its_next_lease() -> None:
    import asyncio

    reg, handle = sleeping_registry()
    assert reg.sleep("m", 1) and reg.models["m"].state is ModelState.SLEEPING
    assert reg.models["m"].handle is None and reg.models["m"].asleep is handle
    assert reg.model_snapshot("m")["sleep_level"] == 1
    assert reg.sleep("m", 2)  # deeper: the backend is asked again
    assert reg.sleep("m", 1)  # shallower than it is: nothing to do
    assert handle.calls == ["sleep 1", "sleep 2"]

    async def lease() -> object:
        async with reg.using("m") as held:
            return held.handle

    assert asyncio.run(lease()) is handle  # the same handle, woken: not a new load
    assert handle.calls[-1] == "wake" and reg.models["m"].state is ModelState.READY
    assert reg.models["m"].sleep_level is None and reg.models["m"].asleep is None


def test_a_held_model_does_not_sleep_and_a_backend_without_sleep_says_so() -> None:
    import asyncio

    from serving_core.errors import BadRequest

    reg, handle = sleeping_registry()

    async def held() -> bool:
        async with reg.using("m"):
            return reg.sleep("m", 1)

    assert asyncio.run(held()) is False and handle.calls == []
    plain = registry(specs("p"), lambda spec: object())
    plain.start_loading()
    assert plain.wait(10)
    with pytest.raises(BadRequest, match="cannot sleep; unload it instead"):
        plain.sleep("p", 1)


def test_idle_models_go_to_sleep_when_asked_to() -> None:
    handle = Sleeper()
    spec = ModelSpec(name="m", backend="test", path="/models/m", keep_alive=0, on_idle="sleep")
    reg = registry([spec], lambda s: handle, sleep=Sleeper.sleep, wake=Sleeper.wake)
    reg.start_loading()
    assert reg.wait(10)
    assert reg.unload_idle() == ["m"]
    assert reg.models["m"].state is ModelState.SLEEPING and handle.calls == ["sleep 1"]
    assert reg.unload("m") and reg.models["m"].state is ModelState.UNLOADED  # what it kept goes too
