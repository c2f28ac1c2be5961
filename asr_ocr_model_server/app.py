"""App factory of the ASR/OCR model server."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from asr_ocr_model_server.api.dependencies import build_servings
from asr_ocr_model_server.api.ocr.router import ocr_router
from asr_ocr_model_server.api.transcription.router import asr_router
from asr_ocr_model_server.backends import build_registry
from asr_ocr_model_server.settings import AsrOcrServerSettings
from serving_core.app import create_model_app
from serving_core.registry import ModelRegistry
from serving_core.settings import ServerSettings
from serving_core.startup import StartupTimeline


def create_app(settings: ServerSettings | None = None, registry: ModelRegistry[Any] | None = None,
               timeline: StartupTimeline | None = None) -> FastAPI:
    """Build the ASR/OCR server app; models start loading when the app starts, unless ``registry`` already is."""
    settings = settings or AsrOcrServerSettings.load()
    return create_model_app(settings, registry or build_registry(settings), title="ASR/OCR model server",
                            routers=[asr_router(), ocr_router()], servings=build_servings, metrics_prefix="asr_ocr",
                            timeline=timeline)
