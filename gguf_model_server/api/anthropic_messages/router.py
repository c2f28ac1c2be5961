"""``POST /v1/messages`` and ``POST /v1/messages/count_tokens`` (Anthropic's Messages API)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from gguf_model_server.api.anthropic_messages.protocol import (
    CountTokensRequest,
    CountTokensResponse,
    MessagesRequest,
    MessagesResponse,
)
from gguf_model_server.api.dependencies import MessagesServingDep
from gguf_model_server.api.generation import GENERATION_ERRORS


def anthropic_messages_router() -> APIRouter:
    router = APIRouter(prefix="/v1/messages", tags=["anthropic"])

    @router.post("", response_model=MessagesResponse, responses=GENERATION_ERRORS)
    async def messages(req: MessagesRequest, request: Request,
                       serving: MessagesServingDep) -> MessagesResponse | StreamingResponse:
        """A message, as the ``anthropic`` SDK's ``messages.create`` (``stream: true``: Anthropic's
        server-sent events, as ``messages.stream`` reads them). Errors in Anthropic's shape."""
        chat, admitted = await serving.admit(req)
        if req.stream:
            return serving.stream(req, chat, admitted)
        return await serving.message(req, chat, admitted, request)

    @router.post("/count_tokens", response_model=CountTokensResponse, responses=GENERATION_ERRORS)
    async def count_tokens(req: CountTokensRequest, serving: MessagesServingDep) -> CountTokensResponse:
        """The prompt tokens a ``/v1/messages`` request with these messages, system and tools would
        evaluate (rendered by the model's chat template), as ``messages.count_tokens``."""
        return CountTokensResponse(input_tokens=await serving.count_tokens(req))

    return router
