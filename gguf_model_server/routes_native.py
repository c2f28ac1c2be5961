"""The server's own routes: ``POST /generate`` and the original servers' ``POST /inference``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse

from gguf_model_server.schemas import GenerateRequest, GenerateResponse, InferenceRequest, InferenceResponse
from gguf_model_server.serving_native import NativeServing
from serving_core.dependencies import MetricsDep, RegistryDep
from serving_core.errors import error_responses

ERRORS = error_responses({400: "prompt does not fit the context window"})


def get_native_serving(registry: RegistryDep, metrics: MetricsDep) -> NativeServing:
    return NativeServing(registry, metrics)


NativeServingDep = Annotated[NativeServing, Depends(get_native_serving)]


def native_router() -> APIRouter:
    router = APIRouter(tags=["generation"])

    @router.post("/generate", response_model=GenerateResponse, responses=ERRORS)
    async def generate(req: GenerateRequest, request: Request,
                       serving: NativeServingDep) -> GenerateResponse | StreamingResponse:
        """Continue a prompt. With ``stream: true`` the answer is server-sent events."""
        admitted = await serving.admit_generate(req)
        if req.stream:
            return serving.generate_stream(admitted)
        return await serving.generate(admitted, request)

    @router.post("/inference", response_model=InferenceResponse, responses=ERRORS)
    async def inference(req: InferenceRequest, request: Request, serving: NativeServingDep) -> InferenceResponse:
        """The original servers' route: ``{model_name, prompt, ...}`` → ``{result}``."""
        return await serving.inference(req, request)

    return router
