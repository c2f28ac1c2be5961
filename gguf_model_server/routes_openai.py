"""OpenAI-compatible routes: ``/v1/completions`` and ``/v1/chat/completions`` (``/v1/models`` is shared)."""

from __future__ import annotations

import json
import re
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import StreamingResponse

from gguf_model_server.routes_native import ERRORS
from gguf_model_server.schemas import (
    ChatCompletionRequest,
    ChatCompletionResponse,
    CompletionRequest,
    CompletionResponse,
    OpenAIParams,
)
from gguf_model_server.serving_openai import ChatServing, CompletionServing
from serving_core.dependencies import MetricsDep, RegistryDep


def get_completion_serving(registry: RegistryDep, metrics: MetricsDep) -> CompletionServing:
    return CompletionServing(registry, metrics)


def get_chat_serving(registry: RegistryDep, metrics: MetricsDep) -> ChatServing:
    return ChatServing(registry, metrics)


CompletionServingDep = Annotated[CompletionServing, Depends(get_completion_serving)]
ChatServingDep = Annotated[ChatServing, Depends(get_chat_serving)]


_PLAIN_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,64}")


def _ignored(req: OpenAIParams) -> dict[str, str]:
    """The parameters accepted but ignored, named for the client (they change nothing here)."""
    # Names are the client's: anything beyond a plain identifier is JSON-escaped (a header value must
    # be printable ASCII, without CR/LF).
    ignored = [n if _PLAIN_NAME.fullmatch(n) else json.dumps(n) for n in req.ignored()]
    return {"X-Ignored-Parameters": ", ".join(ignored)} if ignored else {}


def openai_router() -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["openai"])

    @router.post("/completions", response_model=CompletionResponse, responses=ERRORS)
    async def completions(req: CompletionRequest, request: Request, response: Response,
                          serving: CompletionServingDep) -> CompletionResponse | StreamingResponse:
        """Text completion, as the ``openai`` SDK's ``completions.create``."""
        admitted = await serving.admit_completion(req)
        headers = _ignored(req)
        if req.stream:
            stream = serving.completion_stream(admitted, req)
            stream.headers.update(headers)
            return stream
        response.headers.update(headers)
        return await serving.completion(admitted, request)

    @router.post("/chat/completions", response_model=ChatCompletionResponse, responses=ERRORS)
    async def chat_completions(req: ChatCompletionRequest, request: Request, response: Response,
                               serving: ChatServingDep) -> ChatCompletionResponse | StreamingResponse:
        """Chat completion with the model's own chat template, as ``chat.completions.create``. A model
        without one answers through ChatML, and says so in ``X-Chat-Template: chatml-fallback``."""
        admitted = await serving.admit_chat(req)
        headers = _ignored(req)
        if admitted.llama.chat_fallback:
            headers["X-Chat-Template"] = "chatml-fallback"
        if req.stream:
            stream = serving.chat_stream(admitted, req)
            stream.headers.update(headers)
            return stream
        response.headers.update(headers)
        return await serving.chat(admitted, request)

    return router
