"""``/v1/completions``, as the ``openai`` SDK's ``completions.create``."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator

from fastapi import Request

from gguf_model_server.api.completion.protocol import (
    CompletionChoice,
    CompletionLogprobs,
    CompletionRequest,
    CompletionResponse,
)
from gguf_model_server.api.generation import Admitted, GenerationServing, GenerationStream, timings
from gguf_model_server.api.openai_params import check_openai_params, include_usage
from gguf_model_server.api.protocol import Usage
from gguf_model_server.engine import GenerationStats


class CompletionServing(GenerationServing):
    async def admit_completion(self, req: CompletionRequest) -> Admitted:
        check_openai_params(req)
        return await self.admit(req.model, lambda llama, _: llama.tokenize_prompt(req.text), req.generation_params())

    async def completion(self, admitted: Admitted, req: CompletionRequest, request: Request) -> CompletionResponse:
        text, stats = await self.complete(admitted, request)
        logprobs = CompletionLogprobs.of(admitted.generation.logprobs) if req.logprobs is not None else None
        return CompletionResponse(
            id=f"cmpl-{uuid.uuid4().hex}", created=int(time.time()), model=admitted.model,
            choices=[CompletionChoice(text=text, index=0, logprobs=logprobs, finish_reason=stats.finish_reason)],
            usage=Usage.of(stats), timings=timings(stats),
        )

    def completion_stream(self, admitted: Admitted, req: CompletionRequest) -> GenerationStream:
        ident, created = f"cmpl-{uuid.uuid4().hex}", int(time.time())
        offset = 0

        def chunk(text: str, finish_reason: str | None) -> CompletionResponse:
            nonlocal offset
            logprobs = None
            if req.logprobs is not None:  # the tokens that made this text (the last chunk: any held back)
                logprobs = CompletionLogprobs.of(admitted.generation.take_logprobs(), offset)
                offset += sum(len(t) for t in logprobs.tokens)
            return CompletionResponse(id=ident, created=created, model=admitted.model, choices=[
                CompletionChoice(text=text, index=0, logprobs=logprobs, finish_reason=finish_reason)])

        async def events() -> AsyncIterator[CompletionResponse]:
            async for item in self.events(admitted):
                if not isinstance(item, GenerationStats):
                    yield chunk(item, None)
                    continue
                yield chunk("", item.finish_reason)
                if include_usage(req):
                    yield CompletionResponse(id=ident, created=created, model=admitted.model, choices=[],
                                             usage=Usage.of(item), timings=timings(item))

        return GenerationStream(admitted, events())
