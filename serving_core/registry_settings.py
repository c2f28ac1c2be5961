"""From a server's settings to its model registry: which settings become which registry policy.

Kept out of ``ModelRegistry`` so the registry knows nothing of configuration files or
environment variables (tests and tools build registries directly)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from pathlib import Path

from serving_core.registry import H, HandleHook, Loader, ModelRegistry
from serving_core.settings import ServerSettings
from serving_core.specs import ModelSpec


def registry_from_settings(
    settings: ServerSettings,
    loader: Loader[H],
    *,
    warmup: HandleHook[H] | None = None,
    release: HandleHook[H] | None = None,
    interrupt: HandleHook[H] | None = None,
    share_key: Callable[[ModelSpec], str] = ModelSpec.load_key,
    weights: Callable[[H], Sequence[Path]] | None = None,
) -> ModelRegistry[H]:
    """A registry (not started) for the configured models, with the settings' workers, retries,
    queue limits, compute slots, shutdown drain and on-demand wait; the hooks come from the backend."""
    return ModelRegistry(
        settings.models,
        loader,
        workers=settings.loader_workers,
        retries=settings.load_retries,
        retry_delay=settings.retry_delay_seconds,
        warmup=warmup,
        warmup_default=settings.warmup,
        max_waiting=settings.max_waiting_per_model,
        compute=asyncio.Semaphore(settings.effective_compute_slots()),
        release=release,
        interrupt=interrupt,
        share_identical=settings.share_identical_models,
        share_key=share_key,
        show_paths=settings.show_paths_in_errors,
        drain_seconds=settings.shutdown_drain_seconds,
        on_demand_wait_seconds=settings.on_demand_load_wait_seconds,
        weights=weights,
    )
