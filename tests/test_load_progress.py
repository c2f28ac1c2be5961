"""Load progress: what backends report while loading reaches /health and /health/events."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from inprocess_app import FakeSettings, echo_router

from serving_core import load_progress
from serving_core.app import create_model_app
from serving_core.registry_settings import registry_from_settings
from serving_core.specs import ModelSpec


class SteppedLoader:
    """Reports progress in two phases, each held until the test lets it go on."""

    def __init__(self) -> None:
        self.steps = [threading.Event(), threading.Event()]

    def __call__(self, spec: ModelSpec) -> object:
        load_progress.report(0.3, "reading")
        assert self.steps[0].wait(30)
        load_progress.report(0.7, "building")
        assert self.steps[1].wait(30)
        return object()


def events(lines: Iterable[str]) -> Iterator[tuple[str, dict]]:
    """(event name, data) of each server-sent event, as they come."""
    name = "message"
    for line in lines:
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            yield name, json.loads(line[6:])


def test_progress_reaches_health_and_the_event_stream_until_settled() -> None:
    loader = SteppedLoader()
    cfg = FakeSettings()
    app = create_model_app(cfg, registry_from_settings(cfg, loader), title="t", routers=[echo_router()])
    with TestClient(app, base_url="http://127.0.0.1") as c, c.stream("GET", "/health/events") as stream:
        assert stream.status_code == 200 and stream.headers["content-type"].startswith("text/event-stream")
        seen = []
        for kind, data in events(stream.iter_lines()):
            seen.append((kind, data))
            if kind == "model" and data["progress"] == 0.3:
                health = c.get("/health")
                model = health.json()["models"]["fake"]
                assert health.status_code == 503
                assert (model["state"], model["progress"], model["phase"]) == ("loading", 0.3, "reading")
                loader.steps[0].set()
            elif kind == "model" and data["progress"] == 0.7:
                assert data["phase"] == "building" and data["status"] == "loading"
                loader.steps[1].set()
        # The stream ended by itself: the last event says the server settled.
    assert seen[-1] == ("settled", {"status": "healthy", "message": "1/1 models ready"})
    progress = [d["progress"] for k, d in seen if k == "model" and d["state"] == "loading"]
    assert progress == sorted(progress) and {0.3, 0.7} <= set(progress)
    ready = [d for k, d in seen if k == "model" and d["state"] == "ready"]
    assert ready and ready[-1]["progress"] == 1.0 and ready[-1]["phase"] is None
    after = c.get("/health").json()["models"]["fake"]
    assert after["progress"] == 1.0 and after["phase"] is None


def test_a_settled_server_answers_a_snapshot_and_ends() -> None:
    cfg = FakeSettings()
    app = create_model_app(cfg, registry_from_settings(cfg, lambda spec: object()), title="t", routers=[])
    with TestClient(app, base_url="http://127.0.0.1") as c:
        assert app.state.registry.wait(30)
        r = c.get("/health/events")  # returns: the stream ends once settled
    kinds = [k for k, _ in events(r.text.splitlines())]
    assert kinds == ["model", "settled"]


def test_events_are_public_like_the_other_health_routes() -> None:
    cfg = FakeSettings(api_key="secret")
    app = create_model_app(cfg, registry_from_settings(cfg, lambda spec: object()), title="t", routers=[])
    with TestClient(app, base_url="http://127.0.0.1") as c:
        assert app.state.registry.wait(30)
        assert c.get("/health/events").status_code == 200
        assert c.post("/v1/echo", json={}).status_code == 401


@pytest.mark.slow
def test_llama_cpp_reports_its_load_from_zero_to_one(model_files, monkeypatch) -> None:
    from gguf_model_server import llama_native
    from gguf_model_server.llama_native import NativeModel

    monkeypatch.setattr(llama_native, "PROGRESS_MIN_BYTES", 0)  # the tiny file reports as a large one does
    seen: list[tuple[float, str | None]] = []
    with load_progress.reporting_to(lambda fraction, phase: seen.append((fraction, phase))):
        model = NativeModel(Path(model_files["a"]), use_mmap=True, use_mlock=False)
    model.close()
    fractions = [f for f, _ in seen]
    assert fractions[0] == 0.0 and fractions[-1] == 1.0 and fractions == sorted(fractions)
    assert {p for _, p in seen} == {"loading weights"}
    load_progress.report(0.5)  # outside a load: nothing to report to, nothing happens


@pytest.mark.slow
def test_a_small_file_reports_only_its_phase(model_files) -> None:
    """Per-tensor callbacks cost a small load more than they tell (each takes the GIL)."""
    from gguf_model_server.llama_native import NativeModel

    seen: list[tuple[float, str | None]] = []
    with load_progress.reporting_to(lambda fraction, phase: seen.append((fraction, phase))):
        NativeModel(Path(model_files["a"]), use_mmap=True, use_mlock=False).close()
    assert seen == [(0.0, "loading weights")]


@pytest.mark.slow
def test_a_fresh_server_streams_every_model_to_ready(start_server) -> None:
    """The real GGUF server on its embedded models, watched from its first answer: each model's events
    end ready, its progress never goes back, and the stream ends with `settled`."""
    srv = start_server()
    srv.wait_live(timeout=60)
    with httpx.stream("GET", f"{srv.url}/health/events", timeout=180) as r:
        seen = list(events(r.iter_lines()))
    assert seen[-1][0] == "settled" and seen[-1][1]["status"] == "healthy"
    models = {d["model"] for k, d in seen if k == "model"}
    assert models == set(srv.client.get("/health").json()["models"])
    for name in models:
        mine = [d for k, d in seen if k == "model" and d["model"] == name]
        assert mine[-1]["state"] == "ready" and mine[-1]["progress"] == 1.0
        loading = [d["progress"] for d in mine if d["state"] == "loading"]
        assert loading == sorted(loading)


def test_watchers_past_the_cap_get_429_and_a_closed_stream_frees_its_place(monkeypatch) -> None:
    """A public stream held open for as long as a load lasts: bounded per server. Driven at the
    route itself (the test client's streams end with their client's first read)."""
    import asyncio
    from types import SimpleNamespace

    from serving_core import health
    from serving_core.errors import Overloaded

    monkeypatch.setattr(health, "MAX_EVENT_WATCHERS", 1)
    loader = SteppedLoader()
    registry = registry_from_settings(FakeSettings(), loader)
    registry.start_loading()  # held in its first phase: nothing settles
    endpoint = next(r.endpoint for r in health.health_router().routes if r.path == "/health/events")
    request = SimpleNamespace(app=SimpleNamespace(state=SimpleNamespace(registry=registry)))

    async def watch() -> None:
        first = await endpoint(request)
        assert (await anext(first.body_iterator)).startswith("event: model")
        with pytest.raises(Overloaded) as refused:
            await endpoint(request)
        assert refused.value.retry_after and "already watching" in str(refused.value)
        await first.body_iterator.aclose()  # the client left
        second = await endpoint(request)  # its place is free again
        assert (await anext(second.body_iterator)).startswith("event: model")
        await second.body_iterator.aclose()

    try:
        asyncio.run(watch())
    finally:
        for step in loader.steps:
            step.set()
        registry.close()
