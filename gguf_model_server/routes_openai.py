"""OpenAI-compatible routes: ``/v1/completions`` and ``/v1/chat/completions`` (``/v1/models`` is shared)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import StreamingResponse

from gguf_model_server.routes_native import ERRORS
from gguf_model_server.schemas import (
    ChatCompletionRequest,
    ChatCompletionResponse,
    CompletionRequest,
    CompletionResponse,
)
from gguf_model_server.serving_openai import ChatServing, CompletionServing
from serving_core.dependencies import MetricsDep, RegistryDep


def get_completion_serving(registry: RegistryDep, metrics: MetricsDep) -> CompletionServing:
    return CompletionServing(registry, metrics)


def get_chat_serving(registry: RegistryDep, metrics: MetricsDep) -> ChatServing:
    return ChatServing(registry, metrics)


CompletionServingDep = Annotated[CompletionServing, Depends(get_completion_serving)]
ChatServingDep = Annotated[ChatServing, Depends(get_chat_serving)]


def openai_router() -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["openai"])

    @router.post("/completions", response_model=CompletionResponse, responses=ERRORS)
    async def completions(req: CompletionRequest, request: Request,
                          serving: CompletionServingDep) -> CompletionResponse | StreamingResponse:
        """Text completion, as the ``openai`` SDK's ``completions.create``."""
        admitted = await serving.admit_completion(req)
        if req.stream:
            return serving.completion_stream(admitted, req)
        return await serving.completion(admitted, request)

    @router.post("/chat/completions", response_model=ChatCompletionResponse, responses=ERRORS)
    async def chat_completions(req: ChatCompletionRequest, request: Request, response: Response,
                               serving: ChatServingDep) -> ChatCompletionResponse | StreamingResponse:
        """Chat completion with the model's own chat template, as ``chat.completions.create``. A model
        without one answers through ChatML, and says so in ``X-Chat-Template: chatml-fallback``."""
        admitted = await serving.admit_chat(req)
        headers = {"X-Chat-Template": "chatml-fallback"} if admitted.llama.chat_fallback else {}
        if req.stream:
            stream = serving.chat_stream(admitted, req)
            stream.headers.update(headers)
            return stream
        response.headers.update(headers)
        return await serving.chat(admitted, request)

    return router
