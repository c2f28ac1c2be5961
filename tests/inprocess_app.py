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
from serving_core.registry_settings import registry_from_settings
from serving_core.settings import ServerSettings
from serving_core.specs import ModelSpec


class FakeSettings(ServerSettings):
    def default_models(self) -> list[ModelSpec]:
        return [ModelSpec(name="fake", backend="fake")]


def echo_router() -> APIRouter:
    router = APIRouter()

    @router.post("/v1/echo")
    async def echo(body: dict[str, Any], registry: RegistryDep) -> dict[str, Any]:
        """Uses the model like an inference route does (leased for the call); ``sleep`` keeps it busy."""
        async with registry.using(body.get("model")) as lease:
            await asyncio.sleep(float(body.get("sleep", 0)))
            return {"model": lease.name, "handle": str(lease.handle), "echo": body}

    return router


class SettledClient(TestClient):
    """A TestClient whose ``with`` block starts once the start-up loads are over (they run in the
    background: without this, a test's first request could race a load)."""

    registry: ModelRegistry

    def __enter__(self) -> SettledClient:
        super().__enter__()
        assert self.registry.wait(30), "start-up loads did not finish"
        return self


def client(loader: Callable[[ModelSpec], Any] | None = None, **settings: Any) -> SettledClient:
    """A started app (lifespan run, eager loads over) on ``settings``; use as a context manager."""
    cfg = FakeSettings(**settings)
    registry = registry_from_settings(cfg, loader or (lambda spec: object()))
    app = create_model_app(cfg, registry, title="fake model server", routers=[echo_router()])
    c = SettledClient(app, base_url="http://127.0.0.1")
    c.registry = registry
    return c
