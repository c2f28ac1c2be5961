"""Model lifecycle in-process on the shared core: lazy loads, keep_alive, admin load/unload/reload,
load timeouts. A fake loader stands in for the model (what is tested is the lifecycle)."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from inprocess_app import FakeSettings, client

from serving_core.errors import PermanentLoadError
from serving_core.registry import ModelRegistry, ModelState, RegistryPolicy
from serving_core.registry_settings import registry_from_settings
from serving_core.specs import ModelSpec


class CountingLoader:
    """Counts loads; each load takes ``seconds``; fails while ``broken`` is set."""

    def __init__(self, seconds: float = 0.0) -> None:
        self.seconds = seconds
        self.loads: list[str] = []
        self.broken = False
        self.lock = threading.Lock()

    def __call__(self, spec: ModelSpec) -> Any:
        time.sleep(self.seconds)
        if self.broken:
            raise PermanentLoadError("model file not found: fixed later")
        with self.lock:
            self.loads.append(spec.name)
            return f"handle-{spec.name}-{len(self.loads)}"


def model(name: str = "m", **fields: Any) -> dict[str, Any]:
    return {"name": name, "backend": "fake", **fields}


def state(c, name: str = "m") -> str:
    return str(c.get("/health").json()["models"][name]["state"])


def settled_state(c, name: str = "m", timeout: float = 10) -> str:
    """The model's state once its start-up load is over (loads run in the background)."""
    deadline = time.monotonic() + timeout
    while state(c, name) in ("pending", "loading") and time.monotonic() < deadline:
        time.sleep(0.02)
    return state(c, name)


def test_a_lazy_model_loads_once_on_its_first_requests_which_wait_for_it() -> None:
    loader = CountingLoader(seconds=0.3)
    with client(loader, models=[model(load="lazy")]) as c:
        assert state(c) == "unloaded" and loader.loads == []
        # The server is ready: unloaded by policy is not a failure.
        assert c.get("/health/ready").status_code == 200
        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(lambda _: c.post("/v1/echo", json={}), range(4)))
        assert [r.status_code for r in answers] == [200] * 4
        assert loader.loads == ["m"]  # one load for four concurrent requests
        waited = [float(r.headers["x-model-load-wait-seconds"]) for r in answers]
        # Each says how long it waited for the load (the first one waited for all of it).
        assert all(w > 0 for w in waited) and max(waited) > 0.25
        assert state(c) == "ready"
        assert "x-model-load-wait-seconds" not in c.post("/v1/echo", json={}).headers


def test_a_request_whose_on_demand_load_fails_still_says_how_long_it_waited() -> None:
    loader = CountingLoader(seconds=0.3)
    loader.broken = True
    with client(loader, models=[model(load="lazy")]) as c:
        r = c.post("/v1/echo", json={})
        assert r.status_code == 503 and "fixed later" in r.json()["error"]["message"]
        assert float(r.headers["x-model-load-wait-seconds"]) > 0.25


def test_keep_alive_unloads_an_idle_model_and_the_next_request_loads_it_again() -> None:
    loader = CountingLoader()
    with client(loader, models=[model(keep_alive=0.2)], idle_check_seconds=0.05) as c:
        assert c.post("/v1/echo", json={}).status_code == 200
        deadline = time.monotonic() + 5
        while state(c) != "unloaded" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert state(c) == "unloaded"
        health = c.get("/health")
        assert health.status_code == 200 and health.json()["status"] == "healthy"
        r = c.post("/v1/echo", json={})
        assert r.status_code == 200 and r.json()["handle"] == "handle-m-2"


def test_a_model_in_use_is_never_unloaded_under_its_request() -> None:
    loader = CountingLoader()
    with client(loader, models=[model(keep_alive=0)], idle_check_seconds=0.05) as c:
        busy = threading.Thread(target=lambda: c.post("/v1/echo", json={"sleep": 1.0}))
        busy.start()
        deadline = time.monotonic() + 5
        while c.registry.models["m"].refs == 0 and time.monotonic() < deadline:
            time.sleep(0.01)  # until the request holds the model
        time.sleep(0.2)  # several keep_alive checks (every 0.05 s) pass meanwhile
        during = state(c)
        r = c.post("/models/m/unload")
        busy.join(5)  # before any assertion: a failing one must not leave a request running
        assert during == "ready"  # keep_alive 0, but a request holds it
        assert r.status_code == 409 and r.json()["error"]["code"] == "model_in_use"
        deadline = time.monotonic() + 5
        while state(c) != "unloaded" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert state(c) == "unloaded"


def test_admin_load_unload_reload_and_unknown_names() -> None:
    loader = CountingLoader()
    with client(loader, models=[model(load="lazy")]) as c:
        r = c.post("/models/m/load")
        assert r.status_code == 200 and r.json()["state"] == "ready" and loader.loads == ["m"]
        assert c.post("/models/m/load").json()["state"] == "ready" and loader.loads == ["m"]  # no second load
        assert c.post("/models/m/unload").json()["state"] == "unloaded"
        assert c.post("/models/m/reload").json()["state"] == "ready" and len(loader.loads) == 2
        assert c.post("/models/m/reload").json()["state"] == "ready" and len(loader.loads) == 3  # re-read
        for action in ("load", "unload", "reload"):
            r = c.post(f"/models/nope/{action}")
            assert r.status_code == 404 and "nope" in r.json()["error"]["message"]


def test_reload_after_fixing_a_failed_model_needs_no_restart() -> None:
    loader = CountingLoader()
    loader.broken = True
    with client(loader, models=[model()]) as c:
        assert settled_state(c) == "failed"
        assert c.post("/v1/echo", json={}).status_code == 503
        loader.broken = False  # the operator fixed the file
        assert c.post("/models/m/reload").json()["state"] == "ready"
        assert c.post("/v1/echo", json={}).status_code == 200


def test_a_load_that_hangs_fails_after_load_timeout_and_shutdown_does_not_wait_for_it() -> None:
    blocker = threading.Event()

    def hang(spec: ModelSpec) -> Any:
        if spec.name == "stuck":
            blocker.wait(60)  # like open() on a FIFO named x.gguf
        return object()

    t0 = time.monotonic()
    with client(hang, models=[model("stuck", load_timeout=0.3), model("fine")]) as c:
        assert settled_state(c, "stuck") == "failed"
        assert "load timed out after 0.3 s" in c.get("/health").json()["models"]["stuck"]["error"]
        assert settled_state(c, "fine") == "ready"
    assert time.monotonic() - t0 < 10
    blocker.set()


def test_shutdown_during_a_hanging_load_ends_it_in_a_real_state() -> None:
    blocker = threading.Event()
    registry = ModelRegistry([ModelSpec(name="a", backend="fake", load_timeout=60),
                              ModelSpec(name="b", backend="fake")],
                             lambda spec: blocker.wait(60), RegistryPolicy(workers=1))
    registry.start_loading()
    time.sleep(0.2)
    t0 = time.monotonic()
    registry.close()
    assert time.monotonic() - t0 < 5  # did not wait for the hanging load
    states = {n: m.state for n, m in registry.models.items()}
    assert states == {"a": ModelState.UNLOADED, "b": ModelState.UNLOADED}  # b never started: not "pending"
    assert all(m.error == "server shut down before the model loaded" for m in registry.models.values())
    blocker.set()


def test_start_loading_twice_loads_once() -> None:
    loader = CountingLoader()
    registry = registry_from_settings(FakeSettings(models=[model()]), loader)
    registry.start_loading()
    registry.start_loading()
    assert registry.wait(5)
    registry.close()
    assert loader.loads == ["m"]


def test_startup_endpoint_keeps_the_start_up_loads_and_ignores_later_ones() -> None:
    loader = CountingLoader()
    with client(loader, models=[model("eager"), model("lazy", load="lazy")]) as c:
        first = c.get("/health/startup").json()
        eager = first["models"]["eager"]
        assert 0 <= eager["queued"] <= eager["load_start"] <= eager["load_end"] <= first["ready"]
        assert first["models"]["lazy"] == {"state": "unloaded", "queued": None, "load_start": None,
                                           "load_end": None}
        assert c.post("/models/eager/reload").status_code == 200
        assert c.post("/models/lazy/load").status_code == 200
        later = c.get("/health/startup").json()
        assert later["models"]["eager"] == eager  # the reload is not a start-up load
        assert later["models"]["lazy"]["load_start"] is None and later["models"]["lazy"]["state"] == "ready"
        assert loader.loads.count("eager") == 2


def test_unload_during_a_load_is_a_409_and_the_load_is_not_mistaken_for_unloaded() -> None:
    gate = threading.Event()

    def slow(spec: ModelSpec) -> str:
        gate.wait(10)
        return "handle"

    with client(slow, models=[model(load="lazy")]) as c:
        c.registry.request_load("m")
        assert state(c) == "loading"
        r = c.post("/models/m/unload")
        assert r.status_code == 409 and r.json()["error"]["code"] == "model_loading", r.text
        assert "once the load has ended" in r.json()["error"]["message"]
        gate.set()
        assert settled_state(c) == "ready"
        assert c.post("/models/m/unload").json()["state"] == "unloaded"
