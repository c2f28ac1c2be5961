"""The ASR/OCR server's serving object, built once when the app starts (``build_servings``, called by
the lifespan) and kept on ``app.state.servings``; routes reach it through a typed dependency."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request

from asr_ocr_model_server.api.uploads import UploadServing
from asr_ocr_model_server.settings import AsrOcrServerSettings
from serving_core.metrics import ServerMetrics
from serving_core.registry import ModelRegistry
from serving_core.settings import ServerSettings


def build_servings(registry: ModelRegistry[Any], metrics: ServerMetrics, settings: ServerSettings) -> UploadServing:
    if not isinstance(settings, AsrOcrServerSettings):
        raise TypeError("the ASR/OCR routes need AsrOcrServerSettings")
    return UploadServing(registry, settings, metrics)


def get_upload_serving(request: Request) -> UploadServing:
    serving: UploadServing = request.app.state.servings
    return serving


UploadServingDep = Annotated[UploadServing, Depends(get_upload_serving)]
