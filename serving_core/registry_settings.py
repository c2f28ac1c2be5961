"""From a server's settings to its model registry: which setting becomes which registry policy.

Kept out of ``ModelRegistry`` so the registry knows nothing of configuration files or
environment variables (tests and tools build registries directly)."""

from __future__ import annotations

from serving_core.compute import ComputeSlots
from serving_core.managed_model import H, Loader, ModelHooks, RegistryPolicy
from serving_core.registry import ModelRegistry
from serving_core.settings import ServerSettings


def policy_from_settings(settings: ServerSettings) -> RegistryPolicy:
    return RegistryPolicy(
        workers=settings.loader_workers,
        retries=settings.load_retries,
        retry_delay=settings.retry_delay_seconds,
        warmup_default=settings.warmup,
        max_waiting=settings.max_waiting_per_model,
        share_identical=settings.share_identical_models,
        show_paths=settings.show_paths_in_errors,
        drain_seconds=settings.shutdown_drain_seconds,
        on_demand_wait_seconds=settings.on_demand_load_wait_seconds,
    )


def compute_from_settings(settings: ServerSettings) -> ComputeSlots:
    """The server's one pool of compute slots (engines and guarded calls alike take from it)."""
    return ComputeSlots(settings.effective_compute_slots())


def registry_from_settings(settings: ServerSettings, hooks: ModelHooks[H] | Loader[H],
                           compute: ComputeSlots | None = None) -> ModelRegistry[H]:
    """A registry (not started) for the configured models, with the settings' policy; the hooks come
    from the backend, ``compute`` is the server's pool (built from the settings if not given)."""
    return ModelRegistry(settings.models, hooks, policy_from_settings(settings),
                         compute=compute or compute_from_settings(settings))
