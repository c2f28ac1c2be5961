"""The server's own API family: ``POST /generate`` and the original servers' ``POST /inference``."""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import Request

from gguf_model_server.api.generation import Admitted, GenerationServing, GenerationStream, timings
from gguf_model_server.api.native.protocol import (
    GenerateRequest,
    GenerateResponse,
    GenerateStreamEvent,
    InferenceRequest,
    InferenceResponse,
)
from gguf_model_server.api.protocol import Usage
from gguf_model_server.engine import GenerationStats


class NativeServing(GenerationServing):
    """``/generate`` (text, or server-sent events) and ``/inference`` (``{result}``)."""

    async def admit_generate(self, req: GenerateRequest) -> Admitted:
        return await self.admit(req.model, lambda llama, _: llama.tokenize_prompt(req.prompt), req.generation_params())

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
        admitted = await self.admit(req.model_name, lambda llama, _: llama.tokenize_prompt(req.prompt),
                                    req.generation_params())
        text, _ = await self.complete(admitted, request)
        return InferenceResponse(result=text)
