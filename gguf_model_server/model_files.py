"""Which GGUF file a configured model loads, checked before llama.cpp is given it."""

from __future__ import annotations

import logging
from pathlib import Path

from model_store.assembly import EmbeddedModelError
from model_store.embedded import DEFAULT_MODEL_NAME, EMBEDDED_MODELS, embedded_model_path, prepare
from serving_core.errors import PermanentLoadError
from serving_core.specs import ModelSpec, require_path

log = logging.getLogger("gguf_model_server.llama")

GGUF_MAGIC = b"GGUF"


def embedded_name_for(spec: ModelSpec) -> str:
    """The embedded model a spec without a ``path`` means: the one of its name, else the default
    (configs written when Gemma was the only embedded model name none)."""
    return spec.name if spec.name in EMBEDDED_MODELS else DEFAULT_MODEL_NAME


def model_file(spec: ModelSpec, model_dir: str | None) -> Path:
    """The file ``spec`` names, or its embedded model's; nothing is checked or assembled."""
    return spec.resolved_path(model_dir) or embedded_model_path(embedded_name_for(spec))


def resolve_model_path(spec: ModelSpec, model_dir: str | None) -> Path:
    """The GGUF file to load for ``spec``: its ``path``, or else its embedded model (assembled now,
    once, if the install step has not done it). PermanentLoadError when it is missing, not a
    regular file, not a GGUF file, or an embedded model that cannot be assembled."""
    path = spec.resolved_path(model_dir)
    if path is None:
        name = embedded_name_for(spec)
        if name != spec.name:
            log.warning("model '%s' has no path and is no embedded model's name (%s): it serves the default "
                        "embedded model, %s; set its path to serve a file of your own", spec.name,
                        ", ".join(EMBEDDED_MODELS), name)
        path = embedded_model_path(name)
        if not path.is_file():
            # Normally done once by the install step; doing it here keeps a half-set-up machine working.
            log.warning("embedded model %s not assembled yet; assembling %s (one-time)", name, path)
            try:
                path = prepare(name)
            except EmbeddedModelError as exc:
                raise PermanentLoadError(str(exc)) from None
    require_path(path, "model file", hint=spec.path_hint(model_dir))
    with path.open("rb") as fh:
        magic = fh.read(4)
    if magic != GGUF_MAGIC:
        raise PermanentLoadError(f"not a GGUF file (bad magic bytes {magic!r}): {path}")
    return path
