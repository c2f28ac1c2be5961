"""Typed FastAPI dependencies: what a route handler may use, taken from ``app.state``.

Handlers declare ``registry: RegistryDep`` instead of reading ``request.app.state`` themselves, so
the type is checked and a test can override the dependency.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request

from serving_core.registry import ModelRegistry


def get_registry(request: Request) -> ModelRegistry[Any]:
    registry: ModelRegistry[Any] = request.app.state.registry
    return registry


RegistryDep = Annotated[ModelRegistry[Any], Depends(get_registry)]
