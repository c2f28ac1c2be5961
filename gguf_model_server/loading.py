"""Which models the GGUF server loads, and how (no web-framework imports: loading starts first)."""

from __future__ import annotations

from gguf_model_server.engine import JobKind
from gguf_model_server.llama_backend import LlamaModel, make_loader
from gguf_model_server.model_files import model_file
from serving_core.managed_model import ModelHooks
from serving_core.registry import ModelRegistry
from serving_core.registry_settings import compute_from_settings, registry_from_settings
from serving_core.settings import ServerSettings


def build_registry(settings: ServerSettings) -> ModelRegistry[LlamaModel]:
    """A registry whose models each get an engine; the engines (and the guards) share the server's one
    pool of compute slots."""
    compute = compute_from_settings(settings)
    hooks = ModelHooks(
        loader=make_loader(settings.model_dir, compute, settings.max_waiting_per_model),
        warmup=LlamaModel.warmup, release=LlamaModel.close, interrupt=LlamaModel.interrupt,
        sleep=LlamaModel.sleep, wake=LlamaModel.wake,
        # Two path-less specs share a model only if they mean the same embedded file.
        share_key=lambda spec: spec.load_key(model_file(spec, settings.model_dir)),
        # Only a mapped model's memory is the file's page cache (use_mmap: false copies it).
        weights=lambda model: [model.path] if model.options.use_mmap else [],
        # Clients (and the cold-start tool's first request) learn which routes a model serves.
        describe=lambda model: {"task": "embedding" if model.engine.kind is JobKind.EMBED else "generation",
                                "placement": model.placement()},
    )
    return registry_from_settings(settings, hooks, compute)
