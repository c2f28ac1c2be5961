"""The app factory both servers build on: lifespan-owned registry, health routes, error handlers."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI

from serving_core.errors import install_error_handlers
from serving_core.health import health_router
from serving_core.limits import BodySizeLimit
from serving_core.registry import Loader, ModelRegistry, Warmup
from serving_core.settings import ServerSettings

log = logging.getLogger("serving_core.app")


def create_model_app(
    settings: ServerSettings,
    *,
    title: str,
    loader: Loader,
    routers: list[APIRouter],
    warmup: Warmup | None = None,
    release: Callable[[Any], None] | None = None,
) -> FastAPI:
    """Build an app whose lifespan starts loading every model in the background and frees them on exit."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        registry = ModelRegistry(
            settings.models,
            loader,
            workers=settings.effective_loader_workers(),
            retries=settings.load_retries,
            retry_delay=settings.retry_delay_seconds,
            warmup=warmup,
            warmup_default=settings.warmup,
            max_waiting=settings.max_waiting_per_model,
            compute=asyncio.Semaphore(settings.effective_compute_slots()),
        )
        app.state.registry = registry
        registry.start_loading()  # returns at once: HTTP is served while models load
        try:
            yield
        finally:
            # Uvicorn has stopped accepting and drained in-flight requests by now.
            await asyncio.to_thread(registry.close, release)
            log.info("models released")

    app = FastAPI(title=title, lifespan=lifespan)
    started = time.monotonic()
    app.state.settings = settings
    app.state.uptime = lambda: time.monotonic() - started
    install_error_handlers(app)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_request_bytes)
    app.include_router(health_router())
    for router in routers:
        app.include_router(router)
    return app
