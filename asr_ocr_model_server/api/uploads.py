"""What every upload route shares: pick the model a request asks for (checking it serves the route's
task), check and decode the upload, run the model on it under its guard; the multipart form pieces
and error answers the upload routes declare alike."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import ExitStack
from typing import TypeVar

from pydantic import WithJsonSchema

from asr_ocr_model_server.backends import AsrOcrModel, Task, task_of
from asr_ocr_model_server.settings import AsrOcrServerSettings
from serving_core.errors import BadRequest, ModelNotFound, error_responses
from serving_core.memory import TRIM_AFTER_BYTES, approx_nbytes, release_freed_memory
from serving_core.metrics import ServerMetrics
from serving_core.registry import ModelRegistry

T = TypeVar("T")
R = TypeVar("R")

ROUTE_OF = {"asr": "/asr", "ocr": "/ocr"}
# Clients written for OpenAI's API send this name; it means "your speech model".
OPENAI_ASR_ALIAS = "whisper-1"

# A multipart form has no null: an optional field is either sent (a string) or left out. The schema
# says so, or clients and schema-driven tests send the text "null" (which is not a name).
OptionalText = WithJsonSchema({"type": "string"})
# An empty upload is refused (422, "the file is empty"): the schema says a file has bytes.
NON_EMPTY_FILE: dict[str, object] = {"minLength": 1}
UPLOAD_ERRORS = error_responses({
    400: "model serves another task",
    413: "upload or image larger than the limit",
    415: "not a supported audio/image file",
    422: "missing field, bad value, or a file that does not decode",
})


class UploadServing:
    """The model-facing half of the upload routes: pick the model for a task, check and decode the
    upload, run the model on it, count what was processed. Built once when the app starts
    (``dependencies.build_servings``); routes reach it through ``UploadServingDep``."""

    def __init__(self, registry: ModelRegistry[AsrOcrModel], settings: AsrOcrServerSettings,
                 metrics: ServerMetrics) -> None:
        self.registry = registry
        self.settings = settings
        self.metrics = metrics

    def pick(self, name: str | None, task: Task) -> str:
        """The model to use: the named one (default: the first ready model for ``task``), checked to
        serve ``task``; typed errors otherwise."""
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
        return name

    async def run(self, name: str | None, task: Task, check: Callable[[AsrOcrModel], None],
                  decode: Callable[[AsrOcrModel, ExitStack], T], call: Callable[[AsrOcrModel, T], R]) -> tuple[str, R]:
        """Pick the model and ``check`` the upload and the request against it (cheap: a wrong or
        oversized file is refused at once, not after queueing), then decode it and run
        ``call(handle, decoded)`` in one worker thread under the model's guard. ``decode(handle,
        held)`` may enter contexts on ``held`` that last until the call ends (a long file's
        exclusive turn in a model that takes several calls at once).

        Decoding inside the guard bounds memory: a decoded upload (up to ~120 MB for a legal image,
        ~115 MB for 30 min of audio) exists only while its model call runs, never for every request
        queued behind it, and decoding counts against the compute slots like the model call does.
        """
        async with self.registry.using(self.pick(name, task)) as lease:  # loaded now if it loads on demand
            guard, handle = lease.model.guard, lease.handle
            guard.check_admission()
            await asyncio.to_thread(check, handle)

            def decode_and_call() -> R:
                with ExitStack() as held:
                    data = decode(handle, held)
                    large = approx_nbytes(data) >= TRIM_AFTER_BYTES
                    try:
                        return call(handle, data)
                    finally:
                        del data
                        if large:
                            release_freed_memory()

            return lease.name, await guard.run(decode_and_call)

    def count(self, name: str, doc: str, model: str, amount: float = 1.0) -> None:
        self.metrics.counter(name, doc, ["model"]).labels(model).inc(amount)
