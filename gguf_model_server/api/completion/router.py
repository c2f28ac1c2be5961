"""``POST /v1/completions``."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse

from gguf_model_server.api.completion.protocol import CompletionRequest, CompletionResponse
from gguf_model_server.api.dependencies import CompletionServingDep
from gguf_model_server.api.generation import GENERATION_ERRORS
from gguf_model_server.api.openai_params import ignored_header


def completion_router() -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["openai"])

    @router.post("/completions", response_model=CompletionResponse, responses=GENERATION_ERRORS)
    async def completions(req: CompletionRequest, request: Request, response: Response,
                          serving: CompletionServingDep) -> CompletionResponse | StreamingResponse:
        """Text completion, as the ``openai`` SDK's ``completions.create``."""
        admitted = await serving.admit_completion(req)
        headers = ignored_header(req)
        if req.stream:
            stream = serving.completion_stream(admitted, req)
            stream.headers.update(headers)
            return stream
        response.headers.update(headers)
        return await serving.completion(admitted, req, request)

    return router
