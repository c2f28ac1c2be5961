"""The server's own routes: ``POST /generate`` and the original servers' ``POST /inference``."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from gguf_model_server.api.dependencies import NativeServingDep
from gguf_model_server.api.generation import GENERATION_ERRORS
from gguf_model_server.api.native.protocol import (
    GenerateRequest,
    GenerateResponse,
    InferenceRequest,
    InferenceResponse,
)


def native_router() -> APIRouter:
    router = APIRouter(tags=["generation"])

    @router.post("/generate", response_model=GenerateResponse, responses=GENERATION_ERRORS)
    async def generate(req: GenerateRequest, request: Request,
                       serving: NativeServingDep) -> GenerateResponse | StreamingResponse:
        """Continue a prompt. With ``stream: true`` the answer is server-sent events."""
        admitted = await serving.admit_generate(req)
        if req.stream:
            return serving.generate_stream(admitted)
        return await serving.generate(admitted, request)

    @router.post("/inference", response_model=InferenceResponse, responses=GENERATION_ERRORS)
    async def inference(req: InferenceRequest, request: Request, serving: NativeServingDep) -> InferenceResponse:
        """The original servers' route: ``{model_name, prompt, ...}`` → ``{result}``."""
        return await serving.inference(req, request)

    return router
