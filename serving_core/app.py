"""The app factory both servers build on: lifespan-owned registry, health routes, error handlers."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI, Response

from serving_core.admin import admin_router
from serving_core.drain import Drain, DrainGate
from serving_core.error_handlers import install_error_handlers
from serving_core.errors import ErrorDialect
from serving_core.health import health_router
from serving_core.limits import BodySizeLimit
from serving_core.metrics import RequestMetrics, ServerMetrics
from serving_core.registry import ModelRegistry
from serving_core.security import install_security
from serving_core.settings import ServerSettings
from serving_core.startup import StartupTimeline

log = logging.getLogger("serving_core.app")

# Threads of the event loop's default executor, where model calls run (``ModelGuard``) beside short
# blocking checks. asyncio's own default, cores + 4, is 6 on two cores: fewer than the calls one
# faster-whisper model takes at once (its batch, ``batch_size`` x ``workers``), so the eighth of
# eight concurrent requests waited outside the batch. Idle threads cost only address space; the
# guards, not the pool, bound the work.
EXECUTOR_THREADS = 64

BuildServings = Callable[[ModelRegistry[Any], ServerMetrics, ServerSettings], Any]
"""Builds a server's serving objects (the typed objects its routes call) from the shared state."""


def create_model_app(
    settings: ServerSettings,
    registry: ModelRegistry[Any],
    *,
    title: str,
    routers: list[APIRouter],
    metrics_prefix: str = "model_server",
    timeline: StartupTimeline | None = None,
    servings: BuildServings | None = None,
    error_dialects: Sequence[tuple[str, ErrorDialect]] = (),
) -> FastAPI:
    """Build an app that serves ``registry``'s models; its lifespan builds the serving objects
    (``servings``, once, onto ``app.state.servings``), starts loading the models (unless the caller
    already did) and frees them on exit."""

    def init_state() -> None:
        """What the routes read from ``app.state``, set once (the lifespan calls it; so may a test
        that drives the ASGI app without a lifespan)."""
        app.state.registry = registry
        if servings is not None:
            app.state.servings = servings(registry, metrics, settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        asyncio.get_running_loop().set_default_executor(
            ThreadPoolExecutor(max_workers=EXECUTOR_THREADS, thread_name_prefix="model-call"))
        init_state()
        if not registry.started:
            registry.start_loading()  # returns at once: HTTP is served while models load
        app.state.timeline.mark("loading_started")
        idle = asyncio.create_task(_unload_idle_models(registry, settings.idle_check_seconds))
        try:
            yield
        finally:
            idle.cancel()
            # Uvicorn has stopped accepting and drained in-flight requests by now.
            await asyncio.to_thread(registry.close)
            log.info("models released")

    app = FastAPI(title=title, lifespan=lifespan)
    started = time.monotonic()
    app.state.settings = settings
    app.state.timeline = timeline or StartupTimeline()
    app.state.uptime = lambda: time.monotonic() - started
    app.state.init_state = init_state
    app.state.error_dialects = tuple(error_dialects)
    install_error_handlers(app)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_request_bytes, max_drain_bytes=settings.max_drain_bytes)
    install_security(app, settings)
    drain = Drain(settings.shutdown_grace_seconds)
    app.state.drain = drain
    app.add_middleware(DrainGate, drain=drain)
    metrics = ServerMetrics(registry, metrics_prefix)
    app.state.metrics = metrics
    app.add_middleware(RequestMetrics, metrics=metrics)  # outermost: counts refused requests too
    app.include_router(health_router())
    app.include_router(admin_router())

    @app.get("/", include_in_schema=False)
    async def index() -> dict[str, str]:
        """Where to go from here (a bare GET / used to be a 404)."""
        return {"service": title, "docs": "/docs", "openapi": "/openapi.json", "health": "/health",
                "models": "/models"}

    @app.get("/metrics", include_in_schema=False)
    async def prometheus_metrics() -> Response:
        """Prometheus text exposition (see docs/OPERATIONS.md for the names)."""
        body, content_type = metrics.exposition()
        return Response(body, media_type=content_type)

    for router in routers:
        app.include_router(router)
    return app


async def _unload_idle_models(registry: ModelRegistry[Any], every: float) -> None:
    """Apply ``keep_alive`` (the spec's, or the one a request set): unload models idle for longer (never
    one a request holds)."""
    while True:
        await asyncio.sleep(every)
        if all(m.keep_alive < 0 for m in registry.models.values()):
            continue
        try:
            await asyncio.to_thread(registry.unload_idle)
        except Exception:
            log.exception("unloading idle models failed")
