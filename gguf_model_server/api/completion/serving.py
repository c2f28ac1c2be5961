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
        finished = await self.complete_choices(admitted, request)
        choices = [CompletionChoice(
            text=done.text, index=done.index, finish_reason=done.stats.finish_reason,
            logprobs=CompletionLogprobs.of(done.generation.logprobs) if req.logprobs is not None else None)
            for done in finished]
        stats = [done.stats for done in finished]
        return CompletionResponse(id=f"cmpl-{uuid.uuid4().hex}", created=int(time.time()), model=admitted.model,
                                  choices=choices, usage=Usage.of(*stats), timings=timings(stats[0]))

    def completion_stream(self, admitted: Admitted, req: CompletionRequest) -> GenerationStream:
        ident, created = f"cmpl-{uuid.uuid4().hex}", int(time.time())
        offsets = [0 for _ in admitted.generations]

        def chunk(index: int, text: str, finish_reason: str | None) -> CompletionResponse:
            logprobs = None
            if req.logprobs is not None:  # the tokens that made this text (the last chunk: any held back)
                logprobs = CompletionLogprobs.of(admitted.generations[index].take_logprobs(), offsets[index])
                offsets[index] += sum(len(t) for t in logprobs.tokens)
            return CompletionResponse(id=ident, created=created, model=admitted.model, choices=[
                CompletionChoice(text=text, index=index, logprobs=logprobs, finish_reason=finish_reason)])

        async def events() -> AsyncIterator[CompletionResponse]:
            stats: list[GenerationStats] = []
            async for index, item in self.choice_events(admitted):
                if not isinstance(item, GenerationStats):
                    yield chunk(index, item, None)
                    continue
                yield chunk(index, "", item.finish_reason)
                stats.append(item)
            if include_usage(req) and stats:
                yield CompletionResponse(id=ident, created=created, model=admitted.model, choices=[],
                                         usage=Usage.of(*stats), timings=timings(stats[0]))

        return GenerationStream(admitted, events())
