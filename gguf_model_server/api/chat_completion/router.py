"""``POST /v1/chat/completions``."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse

from gguf_model_server.api.chat_completion.protocol import ChatCompletionRequest, ChatCompletionResponse
from gguf_model_server.api.dependencies import ChatServingDep
from gguf_model_server.api.generation import GENERATION_ERRORS
from gguf_model_server.api.openai_params import ignored_header


def chat_completion_router() -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["openai"])

    @router.post("/chat/completions", response_model=ChatCompletionResponse, responses=GENERATION_ERRORS)
    async def chat_completions(req: ChatCompletionRequest, request: Request, response: Response,
                               serving: ChatServingDep) -> ChatCompletionResponse | StreamingResponse:
        """Chat completion with the model's own chat template, as ``chat.completions.create``. A model
        without one answers through ChatML, and says so in ``X-Chat-Template: chatml-fallback``."""
        admitted = await serving.admit_chat(req)
        headers = ignored_header(req)
        if admitted.llama.chat_fallback:
            headers["X-Chat-Template"] = "chatml-fallback"
        if req.stream:
            stream = serving.chat_stream(admitted, req)
            stream.headers.update(headers)
            return stream
        response.headers.update(headers)
        return await serving.chat(admitted, req, request)

    return router
