"""The server's own API family: ``POST /generate`` and the original servers' ``POST /inference``."""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import Request

from gguf_model_server.api.generation import Admitted, GenerationParams, GenerationServing, GenerationStream, timings
from gguf_model_server.api.native.protocol import (
    GenerateRequest,
    GenerateResponse,
    GenerateStreamEvent,
    InferenceRequest,
    InferenceResponse,
)
from gguf_model_server.api.protocol import Usage, stop_tuple
from gguf_model_server.engine import GenerationStats
from gguf_model_server.llama_native import SamplingConfig

GENERATE_DEFAULT_MAX_TOKENS = 128


class NativeServing(GenerationServing):
    """``/generate`` (text, or server-sent events) and ``/inference`` (``{result}``)."""

    async def admit_generate(self, req: GenerateRequest) -> Admitted:
        params = GenerationParams(
            sampling=req.sampling(), stop=stop_tuple(req.stop), cache_prompt=req.cache_prompt,
            max_tokens=req.max_tokens if "max_tokens" in req.model_fields_set else None,
            default_max_tokens=GENERATE_DEFAULT_MAX_TOKENS,
        )
        return await self.admit(req.model, lambda llama: llama.tokenize_prompt(req.prompt), params)

    async def generate(self, admitted: Admitted, request: Request) -> GenerateResponse:
        text, stats = await self.complete(admitted, request)
        return GenerateResponse(model=admitted.model, text=text, finish_reason=stats.finish_reason,
                                usage=Usage.of(stats), timings=timings(stats))

    def generate_stream(self, admitted: Admitted) -> GenerationStream:
        async def events() -> AsyncIterator[GenerateStreamEvent]:
            async for item in self.events(admitted):
                if isinstance(item, GenerationStats):
                    yield GenerateStreamEvent(model=admitted.model, text="", finish_reason=item.finish_reason,
                                              usage=Usage.of(item), timings=timings(item))
                else:
                    yield GenerateStreamEvent(model=admitted.model, text=item)

        return GenerationStream(admitted, events())

    async def inference(self, req: InferenceRequest, request: Request) -> InferenceResponse:
        params = GenerationParams(
            sampling=SamplingConfig(temperature=req.temperature), stop=stop_tuple(req.stop),
            max_tokens=req.max_tokens if "max_tokens" in req.model_fields_set else None,
            default_max_tokens=GENERATE_DEFAULT_MAX_TOKENS,
        )
        admitted = await self.admit(req.model_name, lambda llama: llama.tokenize_prompt(req.prompt), params)
        text, _ = await self.complete(admitted, request)
        return InferenceResponse(result=text)
