"""``POST /v1/responses`` (OpenAI's Responses API, stateless)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from gguf_model_server.api.dependencies import ResponsesServingDep
from gguf_model_server.api.generation import GENERATION_ERRORS
from gguf_model_server.api.responses.protocol import Response, ResponsesRequest


def responses_router() -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["openai"])

    @router.post("/responses", response_model=Response, responses=GENERATION_ERRORS)
    async def responses(req: ResponsesRequest, request: Request,
                        serving: ResponsesServingDep) -> Response | StreamingResponse:
        """A response, as the ``openai`` SDK's ``responses.create`` (``stream: true``: the Responses
        event stream, as ``responses.stream()`` reads it). Stateless: nothing is stored."""
        chat, admitted = await serving.admit(req)
        if req.stream:
            return serving.stream(req, chat, admitted)
        return await serving.respond(req, chat, admitted, request)

    return router
