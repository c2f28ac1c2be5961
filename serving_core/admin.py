"""Model lifecycle routes: load, unload and reload a model without restarting the server.

Behind the API key when one is set (every non-health route is). Concurrent calls are safe: a
load already running is joined, not started twice; an unload waits for no one and refuses (409)
while a request holds the model or while it loads.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from serving_core.dependencies import RegistryDep
from serving_core.errors import ModelInUse, error_responses
from serving_core.health import ModelInfo
from serving_core.registry import ModelRegistry, ModelState

ModelName = Annotated[str, Path(description="a configured model name", max_length=256)]


def _info(registry: ModelRegistry[Any], name: str) -> ModelInfo:
    return ModelInfo(name=name, **registry.model_snapshot(name))


async def _load(registry: ModelRegistry[Any], name: str) -> ModelInfo:
    model = registry.lookup(name)
    future = registry.request_load(model.name)
    await asyncio.shield(asyncio.wrap_future(future))  # ends as ready or failed (load_timeout bounds it)
    return _info(registry, name)


def _unload(registry: ModelRegistry[Any], name: str) -> ModelInfo:
    model = registry.lookup(name)
    if not registry.unload(model.name):
        raise ModelInUse(f"model '{name}' is serving requests; unload it when they are done")
    return _info(registry, name)


def _sleep(registry: ModelRegistry[Any], name: str, level: int) -> ModelInfo:
    model = registry.lookup(name)
    if not registry.sleep(model.name, level):
        raise ModelInUse(f"model '{name}' is serving requests; put it to sleep when they are done")
    return _info(registry, name)


def admin_router() -> APIRouter:
    router = APIRouter(prefix="/models", tags=["lifecycle"])
    errors = error_responses({404: "unknown model", 409: "model in use, or loading (unload)"})

    @router.post("/{name}/load", response_model=ModelInfo, responses=errors)
    async def load(name: ModelName, registry: RegistryDep) -> ModelInfo:
        """Load the model (no-op when ready); answers when it is ready or failed, with its state."""
        return await _load(registry, name)

    @router.post("/{name}/unload", response_model=ModelInfo, responses=errors)
    async def unload(name: ModelName, registry: RegistryDep) -> ModelInfo:
        """Free the model's memory; it loads again on its next request. 409 while it serves one or loads."""
        return await asyncio.to_thread(_unload, registry, name)

    @router.post("/{name}/sleep", response_model=ModelInfo,
                 responses={**errors, **error_responses({400: "the model's backend cannot sleep"})})
    async def sleep(name: ModelName, registry: RegistryDep,
                    level: Annotated[int, Query(ge=1, le=2, description="1: free the KV cache and working "
                                                "memory, keep the weights; 2: free the weights too")] = 1,
                    ) -> ModelInfo:
        """Free a model's memory but keep what makes it quick to serve again: it wakes on its next
        request (or POST /models/{name}/wake). 409 while it serves one or loads."""
        return await asyncio.to_thread(_sleep, registry, name, level)

    @router.post("/{name}/wake", response_model=ModelInfo, responses=errors)
    async def wake(name: ModelName, registry: RegistryDep) -> ModelInfo:
        """Wake a sleeping model (loads one that is unloaded); answers when it is ready or failed."""
        return await _load(registry, name)

    @router.post("/{name}/reload", response_model=ModelInfo, responses=errors)
    async def reload(name: ModelName, registry: RegistryDep) -> ModelInfo:
        """Read the model's file again (after fixing a failed model's file, say): unload, then load."""
        model = registry.lookup(name)
        if registry.primary(model).state in (ModelState.READY, ModelState.SLEEPING):
            await asyncio.to_thread(_unload, registry, name)
        return await _load(registry, name)

    return router
