"""Pick the model a request asks for (checking it serves the route's task) and run it on an upload."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Annotated, TypeVar

from fastapi import Depends

from asr_ocr_model_server.backends import AsrOcrModel, Task, task_of
from asr_ocr_model_server.settings import AsrOcrServerSettings
from serving_core.dependencies import MetricsDep, RegistryDep, SettingsDep
from serving_core.errors import BadRequest, ModelNotFound
from serving_core.memory import TRIM_AFTER_BYTES, approx_nbytes, release_freed_memory
from serving_core.metrics import ServerMetrics
from serving_core.registry import ManagedModel, ModelRegistry

T = TypeVar("T")
R = TypeVar("R")

ROUTE_OF = {"asr": "/asr", "ocr": "/ocr"}
# Clients written for OpenAI's API send this name; it means "your speech model".
OPENAI_ASR_ALIAS = "whisper-1"


class UploadServing:
    """The model-facing half of the upload routes: pick the model for a task, check and decode the
    upload, run the model on it, count what was processed. Reached through ``UploadServingDep``."""

    def __init__(self, registry: ModelRegistry[AsrOcrModel], settings: AsrOcrServerSettings,
                 metrics: ServerMetrics) -> None:
        self.registry = registry
        self.settings = settings
        self.metrics = metrics

    async def pick(self, name: str | None, task: Task) -> ManagedModel[AsrOcrModel]:
        """The named model (default: the first ready model for ``task``), ready and held for the
        request (loaded now if it loads on demand); typed errors otherwise."""
        registry = self.registry
        if name == OPENAI_ASR_ALIAS and task == "asr" and name not in registry.models:
            name = None
        if name is None:
            name = registry.default_for(lambda m: task_of(m.spec) == task)
            if name is None:
                raise ModelNotFound(f"no {task.upper()} model is configured on this server",
                                    available=list(registry.models))
        spec_model = registry.models.get(name)
        if spec_model is not None and task_of(spec_model.spec) != task:
            other = task_of(spec_model.spec)
            raise BadRequest(f"model '{name}' is an {other.upper()} model; send it to {ROUTE_OF[other]}")
        managed, _ = await registry.acquire(name)
        return managed

    async def run(self, name: str | None, task: Task, check: Callable[[AsrOcrModel], None],
                  decode: Callable[[], T], call: Callable[[AsrOcrModel, T], R]) -> tuple[str, R]:
        """Pick the model and ``check`` the upload and the request against it (cheap: a wrong or
        oversized file is refused at once, not after queueing), then decode it and run
        ``call(handle, decoded)`` in one worker thread under the model's guard.

        Decoding inside the guard bounds memory: a decoded upload (up to ~120 MB for a legal image,
        ~115 MB for 30 min of audio) exists only while its model call runs, never for every request
        queued behind it, and decoding counts against the compute slots like the model call does.
        """
        managed = await self.pick(name, task)
        managed.guard.check_admission()
        await asyncio.to_thread(check, managed.loaded)

        def decode_and_call() -> R:
            data = decode()
            large = approx_nbytes(data) >= TRIM_AFTER_BYTES
            try:
                return call(managed.loaded, data)
            finally:
                del data
                if large:
                    release_freed_memory()

        return managed.name, await managed.guard.run(decode_and_call)

    def count(self, name: str, doc: str, model: str, amount: float = 1.0) -> None:
        self.metrics.counter(name, doc, ["model"]).labels(model).inc(amount)


def get_upload_serving(registry: RegistryDep, settings: SettingsDep, metrics: MetricsDep) -> UploadServing:
    if not isinstance(settings, AsrOcrServerSettings):
        raise TypeError("the ASR/OCR routes need AsrOcrServerSettings")
    return UploadServing(registry, settings, metrics)


UploadServingDep = Annotated[UploadServing, Depends(get_upload_serving)]
