"""Typed FastAPI dependencies: what a route handler may use, taken from ``app.state``.

Handlers declare ``registry: RegistryDep`` instead of reading ``request.app.state`` themselves, so
the type is checked and a test can override the dependency.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request

from serving_core.metrics import ServerMetrics
from serving_core.registry import ModelRegistry
from serving_core.settings import ServerSettings


def get_registry(request: Request) -> ModelRegistry[Any]:
    registry: ModelRegistry[Any] = request.app.state.registry
    return registry


def get_settings(request: Request) -> ServerSettings:
    settings: ServerSettings = request.app.state.settings
    return settings


def get_metrics(request: Request) -> ServerMetrics:
    metrics: ServerMetrics = request.app.state.metrics
    return metrics


RegistryDep = Annotated[ModelRegistry[Any], Depends(get_registry)]
MetricsDep = Annotated[ServerMetrics, Depends(get_metrics)]
SettingsDep = Annotated[ServerSettings, Depends(get_settings)]
