"""The OpenAI-compatible API family: ``/v1/completions`` and ``/v1/chat/completions``."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace

from fastapi import Request

from gguf_model_server.engine import GenerationStats
from gguf_model_server.llama_backend import LlamaModel
from gguf_model_server.schemas import (
    AssistantMessage,
    ChatChoice,
    ChatChunkChoice,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatCompletionResponse,
    ChatDelta,
    CompletionChoice,
    CompletionRequest,
    CompletionResponse,
    CompletionUsage,
    OpenAIParams,
    stop_tuple,
)
from gguf_model_server.serving import Admitted, GenerationParams, GenerationServing, GenerationStream, timings
from serving_core.errors import BadRequest, echo
from serving_core.registry import ManagedModel, ModelState

log = logging.getLogger("gguf_model_server.serving_openai")

COMPLETION_DEFAULT_MAX_TOKENS = 16  # OpenAI's default for /v1/completions
CHAT_DEFAULT_MAX_TOKENS = 512  # OpenAI has no limit; cut further to what fits the context


def check_openai_params(req: OpenAIParams) -> None:
    """400 for a parameter that would change the result but is not implemented; unknown harmless
    ones (``user``, ``metadata``, …) are only logged (and named in ``X-Ignored-Parameters``)."""
    if req.n != 1:
        raise BadRequest(f"not supported: n={req.n} (one choice per request); send n=1, or several requests",
                         param="n")
    unsupported = req.unsupported()
    if unsupported:
        raise BadRequest(f"not supported: {', '.join(unsupported)}; remove the parameter", param=unsupported[0])
    ignored = req.ignored()
    if ignored:
        log.info("ignoring parameters that change nothing here: %s", ", ".join(echo(k) for k in ignored))


def _params(req: OpenAIParams, max_tokens: int | None, default: int) -> GenerationParams:
    return GenerationParams(sampling=req.sampling(), stop=stop_tuple(req.stop), cache_prompt=req.cache_prompt,
                            max_tokens=max_tokens, default_max_tokens=default)


def _usage(stats: GenerationStats) -> CompletionUsage:
    return CompletionUsage(prompt_tokens=stats.prompt_tokens, completion_tokens=stats.completion_tokens,
                           total_tokens=stats.prompt_tokens + stats.completion_tokens)


def _include_usage(req: OpenAIParams) -> bool:
    return bool(req.stream_options and req.stream_options.include_usage)


class CompletionServing(GenerationServing):
    """``/v1/completions``, as the ``openai`` SDK's ``completions.create``."""

    async def admit_completion(self, req: CompletionRequest) -> Admitted:
        check_openai_params(req)
        max_tokens = req.max_tokens if "max_tokens" in req.model_fields_set else None
        params = _params(req, max_tokens, COMPLETION_DEFAULT_MAX_TOKENS)
        return await self.admit(req.model, lambda llama: llama.tokenize_prompt(req.text), params)

    async def completion(self, admitted: Admitted, request: Request) -> CompletionResponse:
        text, stats = await self.complete(admitted, request)
        return CompletionResponse(
            id=f"cmpl-{uuid.uuid4().hex}", created=int(time.time()), model=admitted.model,
            choices=[CompletionChoice(text=text, index=0, finish_reason=stats.finish_reason)],
            usage=_usage(stats), timings=timings(stats),
        )

    def completion_stream(self, admitted: Admitted, req: CompletionRequest) -> GenerationStream:
        ident, created = f"cmpl-{uuid.uuid4().hex}", int(time.time())

        def chunk(text: str, finish_reason: str | None) -> CompletionResponse:
            return CompletionResponse(id=ident, created=created, model=admitted.model,
                                      choices=[CompletionChoice(text=text, index=0, finish_reason=finish_reason)])

        async def events() -> AsyncIterator[CompletionResponse]:
            async for item in self.events(admitted):
                if not isinstance(item, GenerationStats):
                    yield chunk(item, None)
                    continue
                yield chunk("", item.finish_reason)
                if _include_usage(req):
                    yield CompletionResponse(id=ident, created=created, model=admitted.model, choices=[],
                                             usage=_usage(item), timings=timings(item))

        return GenerationStream(admitted, events())


class ChatServing(GenerationServing):
    """``/v1/chat/completions`` through the model's own chat template, as ``chat.completions.create``."""

    async def admit_chat(self, req: ChatCompletionRequest) -> Admitted:
        check_openai_params(req)
        for i, message in enumerate(req.messages):
            for part in message.content if isinstance(message.content, list) else ():
                if part.type != "text":
                    what = {"image_url": "image input", "input_audio": "audio input", "file": "file input"}.get(
                        part.type, f"content part type '{echo(part.type)}'")
                    raise BadRequest(f"not supported: {what} (messages.{i}: the models here read text only); send "
                                     "text parts", param=f"messages.{i}.content")
                if part.text is None:
                    raise BadRequest(f"messages.{i}.content: a text part without 'text'", param=f"messages.{i}.content")
        messages = [m.as_llama() for m in req.messages]
        params = replace(_params(req, req.requested_max_tokens, CHAT_DEFAULT_MAX_TOKENS), chat=True)
        def tokenize(llama: LlamaModel) -> list[int]:
            # Room to answer in, should the chat have to be shortened to fit.
            reserve = req.requested_max_tokens or min(CHAT_DEFAULT_MAX_TOKENS, llama.n_ctx // 4)
            return llama.tokenize_chat_within(messages, reserve)

        return await self.admit(req.model or self.default_chat_model(), tokenize, params)

    def default_chat_model(self) -> str | None:
        """A chat without ``model`` goes to the first ready model with a chat template of its own (a
        base model answers chat poorly, through a fallback template); None: the usual default."""

        def has_template(m: ManagedModel[LlamaModel]) -> bool:
            handle = self.registry.primary(m).handle
            return m.state is ModelState.READY and handle is not None and not handle.chat_fallback

        return self.registry.default_for(has_template) if any(map(has_template, self.registry.models.values())) \
            else None

    async def chat(self, admitted: Admitted, request: Request) -> ChatCompletionResponse:
        text, stats = await self.complete(admitted, request)
        return ChatCompletionResponse(
            id=f"chatcmpl-{uuid.uuid4().hex}", created=int(time.time()), model=admitted.model,
            choices=[ChatChoice(index=0, message=AssistantMessage(content=text), finish_reason=stats.finish_reason)],
            usage=_usage(stats), timings=timings(stats),
        )

    def chat_stream(self, admitted: Admitted, req: ChatCompletionRequest) -> GenerationStream:
        ident, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())

        def chunk(delta: ChatDelta, finish_reason: str | None = None) -> ChatCompletionChunk:
            return ChatCompletionChunk(id=ident, created=created, model=admitted.model,
                                       choices=[ChatChunkChoice(index=0, delta=delta, finish_reason=finish_reason)])

        async def events() -> AsyncIterator[ChatCompletionChunk]:
            yield chunk(ChatDelta(role="assistant", content=""))
            async for item in self.events(admitted):
                if not isinstance(item, GenerationStats):
                    yield chunk(ChatDelta(content=item))
                    continue
                yield chunk(ChatDelta(), item.finish_reason)
                if _include_usage(req):
                    yield ChatCompletionChunk(id=ident, created=created, model=admitted.model, choices=[],
                                              usage=_usage(item), timings=timings(item))

        return GenerationStream(admitted, events())
