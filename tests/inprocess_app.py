"""A model app in-process with a fake loader: for fast contract tests of the shared core (health,
errors, auth, CORS, metrics) where the model itself is not what is tested."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.testclient import TestClient

from serving_core.app import create_model_app
from serving_core.dependencies import RegistryDep
from serving_core.registry import ModelRegistry
from serving_core.settings import ServerSettings


class FakeSettings(ServerSettings):
    def default_models(self) -> list[Any]:
        from serving_core.specs import ModelSpec

        return [ModelSpec(name="fake", backend="fake")]


def echo_router() -> APIRouter:
    router = APIRouter()

    @router.post("/v1/echo")
    async def echo(body: dict[str, Any], registry: RegistryDep) -> dict[str, Any]:
        model = registry.get(body.get("model"))
        return {"model": model.name, "echo": body}

    return router


def client(**settings: Any) -> TestClient:
    """A started app (lifespan run, the fake model loaded) on ``settings``; use as a context manager."""
    cfg = FakeSettings(**settings)
    registry = ModelRegistry.from_settings(cfg, lambda spec: object())
    app = create_model_app(cfg, registry, title="fake model server", routers=[echo_router()])
    return TestClient(app, base_url="http://127.0.0.1")
