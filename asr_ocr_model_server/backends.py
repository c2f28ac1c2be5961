"""Which backends exist, what task each serves, and loading them lazily.

Only the modules of configured backends are imported: a server on the embedded defaults never
imports torch or transformers (imports are a large part of cold start).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from asr_ocr_model_server.asr.transcript import AsrModel
from asr_ocr_model_server.backend_options import (
    FasterWhisperOptions,
    OpenAIWhisperOptions,
    RapidOcrOptions,
    TransformersOcrOptions,
)
from asr_ocr_model_server.ocr.lines import OcrModel
from serving_core.errors import PermanentLoadError
from serving_core.managed_model import ModelHooks
from serving_core.registry import Loader, ModelRegistry
from serving_core.registry_settings import registry_from_settings
from serving_core.settings import ServerSettings
from serving_core.specs import ModelSpec, parse_options

Task = Literal["asr", "ocr"]

AsrOcrModel = AsrModel | OcrModel
"""A loaded model on this server: what the registry's handles are."""


def as_asr(handle: AsrOcrModel) -> AsrModel:
    """The handle of a model already checked to serve ASR (``UploadServing.pick``), typed as one."""
    if not isinstance(handle, AsrModel):
        raise TypeError(f"{type(handle).__name__} is not a speech-to-text model")
    return handle


def as_ocr(handle: AsrOcrModel) -> OcrModel:
    """The handle of a model already checked to serve OCR (``UploadServing.pick``), typed as one."""
    if not isinstance(handle, OcrModel):
        raise TypeError(f"{type(handle).__name__} is not an OCR model")
    return handle


@dataclass(frozen=True)
class BackendInfo:
    task: Task
    module: str
    package_hint: str
    options: type[BaseModel]


BACKENDS: dict[str, BackendInfo] = {
    "faster_whisper": BackendInfo("asr", "asr_ocr_model_server.asr.faster_whisper_backend", "'.[asr]'",
                                  FasterWhisperOptions),
    "openai_whisper": BackendInfo("asr", "asr_ocr_model_server.asr.openai_whisper_backend", "'.[whisper]'",
                                  OpenAIWhisperOptions),
    "rapidocr": BackendInfo("ocr", "asr_ocr_model_server.ocr.rapidocr_backend", "'.[ocr]'", RapidOcrOptions),
    "transformers": BackendInfo("ocr", "asr_ocr_model_server.ocr.transformers_backend", "'.[transformers]'",
                                TransformersOcrOptions),
}


def task_of(spec: ModelSpec) -> Task:
    return BACKENDS[spec.backend].task


def make_loader(model_dir: str | None) -> Loader[AsrOcrModel]:
    """A registry loader that imports the spec's backend module on first use and loads the model."""

    def load(spec: ModelSpec) -> AsrOcrModel:
        info = BACKENDS.get(spec.backend)
        if info is None:
            raise PermanentLoadError(f"unknown backend '{spec.backend}'; choose one of {sorted(BACKENDS)}")
        try:
            module = importlib.import_module(info.module)
        except ImportError as exc:
            raise PermanentLoadError(
                f"backend '{spec.backend}' needs a package that is not installed ({exc}); "
                f"install the extra: pip install -e {info.package_hint}"
            ) from None
        model: AsrOcrModel = module.load(spec, model_dir)
        return model

    return load


def weight_paths(spec: ModelSpec, model_dir: str | None) -> list[Path]:
    """The files or folders of weights that loading ``spec`` reads (for page-cache eviction and
    I/O figures): the backend module's ``weights(spec, model_dir)`` when it has one (embedded
    defaults), else the spec's own path."""
    module = importlib.import_module(BACKENDS[spec.backend].module)
    find: Callable[[ModelSpec, str | None], Path | None] | None = getattr(module, "weights", None)
    path = find(spec, model_dir) if find is not None else spec.resolved_path(model_dir)
    return [path] if path is not None else []


def concurrency(spec: ModelSpec) -> int:
    """Calls a model takes at once: a faster-whisper model takes as many as its batches hold on each
    of its CTranslate2 workers (concurrent calls share batched encodes and generates, which together
    use the cores one call would), other models one."""
    if spec.backend == "faster_whisper":
        return parse_options(FasterWhisperOptions, spec).calls_at_once()
    return 1


def warmup(handle: AsrOcrModel) -> None:
    handle.warmup()


def release(handle: AsrOcrModel) -> None:
    close = getattr(handle, "close", None)
    if close is not None:
        close()


def interrupt(handle: AsrOcrModel) -> None:
    """Ask a backend to stop its running call (shutdown); backends without a way to are waited for."""
    stop = getattr(handle, "interrupt", None)
    if stop is not None:
        stop()


def build_registry(settings: ServerSettings) -> ModelRegistry[AsrOcrModel]:
    """The registry of the configured ASR/OCR models (not started)."""
    hooks = ModelHooks(loader=make_loader(settings.model_dir), warmup=warmup, release=release, interrupt=interrupt,
                       concurrency=concurrency)
    return registry_from_settings(settings, hooks)
