"""Health and model-listing routes, the same contract on every server."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, Field

from serving_core.errors import Overloaded
from serving_core.registry import ManagedModel, ModelRegistry, ModelState
from serving_core.registry_events import RegistryEvent
from serving_core.startup import StartupTimeline


class ModelPlacement(BaseModel):
    layers: int = Field(description="the model's layers, its output layer counted")
    gpu_layers: int = Field(description="of those, offloaded to a GPU (0 on a build without a GPU backend)")
    gpu_build: bool = Field(description="whether this llama.cpp build has a GPU backend")
    kv_cache: str = Field(description="element types of the KV cache, keys/values (e.g. f16/f16)")


class ModelHealth(BaseModel):
    state: Literal["pending", "loading", "ready", "failed", "unloaded", "sleeping"]
    backend: str
    load_seconds: float | None
    attempts: int
    error: str | None
    since: float
    shares_with: str | None = None
    progress: float | None = Field(
        default=None, description="how far the model's load has got (0-1): 1 once ready; null before any load")
    phase: str | None = Field(default=None, description="what a loading model is doing, where its backend says "
                              "(e.g. 'reading weights')")
    sleep_level: int | None = Field(default=None, description="a sleeping model's level: 1 freed its working "
                                    "memory (KV cache), 2 its weights too; it wakes on its next request")
    task: str | None = Field(default=None, description="what a loaded model serves, where its server says: "
                             "'generation' or 'embedding' (the GGUF server)")
    placement: ModelPlacement | None = Field(
        default=None, description="where a loaded model's layers live (the GGUF server): GPU offload, KV cache types")
    weights_resident: float | None = Field(
        default=None, description="share (0-1) of a ready model's memory-mapped weight files in the page cache; "
        "pages outside it are read from disk by the request that first touches them")


class HealthResponse(BaseModel):
    status: Literal["loading", "healthy", "degraded", "unhealthy"]
    message: str
    models: dict[str, ModelHealth]
    uptime_seconds: float


class ModelStartup(BaseModel):
    """A model's start-up load (null for a model not loaded at start, e.g. ``load: lazy``); later
    loads (on demand, reload) do not change it. ``state`` is the model's state now."""

    state: str
    queued: float | None = Field(description="seconds from process start to its start-up load being queued")
    load_start: float | None = Field(description="... to its first load attempt starting")
    load_end: float | None = Field(description="... to it being ready or failed")


class StartupResponse(BaseModel):
    process_start: float | None = Field(description="when the process was created (epoch seconds)")
    marks: dict[str, float] = Field(
        description="seconds from process start to: interpreter (our code runs), configured (imports, settings), "
        "loading_started, web_stack_ready, listening (HTTP served)")
    models: dict[str, ModelStartup]
    ready: float | None = Field(description="seconds from process start to every start-up load having ended")


class ModelInfo(ModelHealth):
    name: str


class OpenAIModel(BaseModel):
    """One entry of ``GET /v1/models``; ``state`` and ``error`` are this server's additions, so that a
    model that cannot serve is not listed as if it could."""

    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str
    state: Literal["pending", "loading", "ready", "failed", "unloaded", "sleeping"]
    error: str | None = None


class OpenAIModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[OpenAIModel] = Field(description="ready models first")


class ModelEvent(BaseModel):
    """One ``model`` event of ``GET /health/events``: a model's state or load progress changed."""

    model: str
    state: Literal["pending", "loading", "ready", "failed", "unloaded", "sleeping"]
    progress: float | None
    phase: str | None
    load_seconds: float | None
    error: str | None
    status: str = Field(description="the server's overall status after this change (as on /health)")


# What a watcher of /health/events hears about; request-side events (looked_up, leased) are not news.
_WATCHED = frozenset({"queued", "loading", "progress", "ready", "failed", "unloaded"})
# A comment line this often keeps proxies from closing a quiet stream (a load can take minutes).
_KEEPALIVE_SECONDS = 15.0
# Streams of /health/events open at once, per server: each holds a registry listener and a task for
# as long as a load lasts (it is public); the next watcher gets 429 + Retry-After.
MAX_EVENT_WATCHERS = 64


def _settled(registry: ModelRegistry[Any]) -> bool:
    """No start-up load outstanding and no load running: nothing more to report for now."""
    return overall_status(registry)[0] != "loading" and not any(
        m.state is ModelState.LOADING for m in registry.models.values())


def _model_event(registry: ModelRegistry[Any], name: str) -> str:
    snap = registry.models[name].snapshot(registry.show_paths)
    event = ModelEvent(model=name, state=snap["state"], progress=snap["progress"], phase=snap["phase"],
                       load_seconds=snap["load_seconds"], error=snap["error"], status=overall_status(registry)[0])
    return f"event: model\ndata: {event.model_dump_json()}\n\n"


async def _registry_events(registry: ModelRegistry[Any], watchers: list[int]) -> AsyncIterator[str]:
    """Every model's state now, then one event per change (state or a percent of progress) until every
    model is settled, then ``settled`` with the overall status. Counted in ``watchers[0]`` while it
    runs (from its first event: a stream never started, its client gone, holds nothing)."""
    loop = asyncio.get_running_loop()
    changed: asyncio.Queue[str] = asyncio.Queue()

    def listener(event: RegistryEvent) -> None:  # called in loader threads
        if event.kind in _WATCHED:
            loop.call_soon_threadsafe(changed.put_nowait, event.model.name)

    registry.listeners.append(listener)
    watchers[0] += 1
    try:
        for name in registry.models:
            yield _model_event(registry, name)
        while not _settled(registry) or not changed.empty():
            try:
                name = await asyncio.wait_for(changed.get(), _KEEPALIVE_SECONDS)
            except TimeoutError:
                yield ": keep-alive\n\n"
                continue
            yield _model_event(registry, name)
        status, message = overall_status(registry)
        yield f"event: settled\ndata: {json.dumps({'status': status, 'message': message})}\n\n"
    finally:
        registry.listeners.remove(listener)
        watchers[0] -= 1


class ModelsResponse(BaseModel):
    default: str | None = Field(description="what a request without a model name gets: the first ready model")
    models: list[ModelInfo]


def overall_status(registry: ModelRegistry[Any]) -> tuple[str, str]:
    """Fold per-model states into one status and a message a person can read."""
    states = [m.state for m in registry.models.values()]
    # Loading on demand (a lazy model's first request, an admin load) is not start-up: still ready.
    waiting = [m for m in registry.models.values()
               if m.state in (ModelState.PENDING, ModelState.LOADING) and not m.on_demand]
    ready = states.count(ModelState.READY)
    # Unloaded by policy (load: lazy, keep_alive, an admin unload) loads on the next request: not a failure.
    serviceable = [m for m in registry.models.values() if m.state is ModelState.READY or _by_policy(m)]
    if not states:
        return "unhealthy", "no models configured"
    if waiting:
        return "loading", f"{ready}/{len(states)} models ready, {len(waiting)} still loading"
    if len(serviceable) == len(states):
        idle = len(states) - ready
        return "healthy", f"{ready}/{len(states)} models ready" + (f", {idle} loaded on demand" if idle else "")
    failed = [m.name for m in registry.models.values() if m not in serviceable]
    if ready:
        return "degraded", f"{ready}/{len(states)} models ready; not serving: {', '.join(failed)}"
    return "unhealthy", f"no model is ready; not serving: {', '.join(failed)}"


def _by_policy(model: ManagedModel[Any]) -> bool:
    """Not loaded now, but it loads on its next request (unloaded without an error, or loading on demand)."""
    return (model.state in (ModelState.UNLOADED, ModelState.SLEEPING) and model.error is None) or (
        model.on_demand and model.state in (ModelState.PENDING, ModelState.LOADING))


def _health_body(request: Request) -> HealthResponse:
    registry: ModelRegistry[Any] = request.app.state.registry
    status, message = overall_status(registry)
    return HealthResponse(
        status=status,  # type: ignore[arg-type]
        message=message,
        models=registry.snapshot(),  # type: ignore[arg-type]
        uptime_seconds=round(request.app.state.uptime(), 3),
    )


def health_router() -> APIRouter:
    router = APIRouter(tags=["health"])
    watchers = [0]  # /health/events streams open now (this app's; only the event loop's thread counts)

    @router.get("/health", response_model=HealthResponse, responses={503: {"model": HealthResponse}})
    async def health(request: Request) -> JSONResponse:
        """Overall status and every model's state; 200 when serving, 503 while loading or broken."""
        body = _health_body(request)
        ok = body.status == "healthy" or (
            body.status == "degraded" and not request.app.state.settings.strict_readiness
        )
        headers = {"Retry-After": "1"} if body.status == "loading" else {}
        return JSONResponse(body.model_dump(), status_code=200 if ok else 503, headers=headers)

    @router.get("/health/startup", response_model=StartupResponse)
    async def startup(request: Request) -> StartupResponse:
        """Where this process's start-up time went: marks and each model's load, in seconds since the
        process was created (what `python test_cold_start.py` reports)."""
        registry: ModelRegistry[Any] = request.app.state.registry
        timeline: StartupTimeline = request.app.state.timeline

        def since(at: float | None) -> float | None:
            return None if at is None else timeline.since_start(at)

        models = {}
        for name, m in registry.models.items():
            t = registry.startup.loads.get(name, {})
            models[name] = ModelStartup(state=m.state.value, queued=since(t.get("queued")),
                                        load_start=since(t.get("load_start")), load_end=since(t.get("load_end")))
        return StartupResponse(process_start=timeline.process_start,
                               marks={k: timeline.since_start(v) for k, v in timeline.marks.items()},
                               models=models, ready=since(registry.loads.finished_wall))

    @router.get("/health/events", response_class=StreamingResponse,
                 responses={200: {"content": {"text/event-stream": {}},
                                  "description": "server-sent events: `model` (ModelEvent JSON) per change, "
                                                 "then `settled`"}})
    async def health_events(request: Request) -> StreamingResponse:
        """Load progress as it happens: every model's state, then an event per state change or percent
        of load progress, until every model is settled (ready, failed or unloaded), then a `settled`
        event and the end of the stream (what `python test_cold_start.py` draws its bars from). 429 with
        Retry-After while MAX_EVENT_WATCHERS streams are open."""
        if watchers[0] >= MAX_EVENT_WATCHERS:
            raise Overloaded(f"{MAX_EVENT_WATCHERS} clients are already watching /health/events; poll /health, "
                             "or retry shortly", retry_after=5)
        return StreamingResponse(_registry_events(request.app.state.registry, watchers),
                                 media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    @router.get("/health/live")
    async def live() -> dict[str, str]:
        """200 while the process serves HTTP."""
        return {"status": "alive"}

    @router.get("/health/ready", response_model=HealthResponse, responses={503: {"model": HealthResponse}})
    async def ready(request: Request) -> JSONResponse:
        """200 only when every configured model is ready."""
        body = _health_body(request)
        return JSONResponse(body.model_dump(), status_code=200 if body.status == "healthy" else 503)

    @router.get("/models", response_model=ModelsResponse)
    async def models(request: Request) -> ModelsResponse:
        """Every configured model with its state and load time."""
        registry: ModelRegistry[Any] = request.app.state.registry
        return ModelsResponse(
            default=registry.default_for(),
            models=[ModelInfo(name=n, **s) for n, s in registry.snapshot().items()],
        )

    @router.get("/v1/models", response_model=OpenAIModelList, tags=["openai"])
    async def openai_models(request: Request) -> OpenAIModelList:
        """Every configured model as the ``openai`` SDK's ``models.list()`` reads it, ready ones first."""
        registry: ModelRegistry[Any] = request.app.state.registry
        owner = request.app.title
        entries = [OpenAIModel(id=name, created=int(m.transitions["pending"]), owned_by=owner,
                               state=m.state.value, error=m.public_error(registry.show_paths))
                   for name, m in registry.models.items()]
        return OpenAIModelList(data=sorted(entries, key=lambda e: e.state != "ready"))

    return router
