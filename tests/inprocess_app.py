"""A model app in-process with a fake loader: for fast contract tests of the shared core (health,
errors, auth, CORS, metrics, lifecycle) where the model itself is not what is tested."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter
from fastapi.testclient import TestClient

from serving_core.app import create_model_app
from serving_core.dependencies import RegistryDep
from serving_core.registry import ModelRegistry
from serving_core.settings import ServerSettings
from serving_core.specs import ModelSpec


class FakeSettings(ServerSettings):
    def default_models(self) -> list[ModelSpec]:
        return [ModelSpec(name="fake", backend="fake")]


def echo_router() -> APIRouter:
    router = APIRouter()

    @router.post("/v1/echo")
    async def echo(body: dict[str, Any], registry: RegistryDep) -> dict[str, Any]:
        """Uses the model like an inference route does (held for the request); ``sleep`` keeps it busy."""
        model, _ = await registry.acquire(body.get("model"))
        await asyncio.sleep(float(body.get("sleep", 0)))
        return {"model": model.name, "handle": str(model.handle), "echo": body}

    return router


def client(loader: Callable[[ModelSpec], Any] | None = None, **settings: Any) -> TestClient:
    """A started app (lifespan run, eager models loaded) on ``settings``; use as a context manager."""
    cfg = FakeSettings(**settings)
    registry = ModelRegistry.from_settings(cfg, loader or (lambda spec: object()))
    app = create_model_app(cfg, registry, title="fake model server", routers=[echo_router()])
    return TestClient(app, base_url="http://127.0.0.1")
