"""OpenAI-compatible routes: ``/v1/models``, ``/v1/completions``, ``/v1/chat/completions``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from gguf_model_server.generation import (
    check_openai_params,
    pick_model,
    prepare_stream,
    run_timed,
    sse_from_chunks,
)
from gguf_model_server.routes_native import ERRORS
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
)
from serving_core.streaming import SSE_HEADERS


def _usage(prompt_tokens: int, completion_tokens: int) -> CompletionUsage:
    return CompletionUsage(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                           total_tokens=prompt_tokens + completion_tokens)


def openai_router() -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["openai"])

    @router.post("/completions", response_model=CompletionResponse, responses=ERRORS)
    async def completions(req: CompletionRequest, request: Request) -> Any:
        """Text completion, as the ``openai`` SDK's ``completions.create``."""
        check_openai_params(req)
        target = pick_model(request, req.model)
        params = req.llama_params(req.max_tokens)
        prompt = req.text
        if req.stream:
            prompt_tokens = await prepare_stream(target, prompt, req.max_tokens)
            count: dict[str, Any] = {"n": 0, "id": "", "created": 0}
            include_usage = bool(req.stream_options and req.stream_options.include_usage)

            def render(chunk: dict[str, Any]) -> CompletionResponse:
                choice = chunk["choices"][0]
                count["id"], count["created"] = chunk["id"], chunk["created"]
                count["n"] += 1 if choice["text"] else 0
                return CompletionResponse(
                    id=chunk["id"], created=chunk["created"], model=target.name,
                    choices=[CompletionChoice(text=choice["text"], index=0,
                                              finish_reason=choice.get("finish_reason"))],
                )

            def finish() -> CompletionResponse | None:
                if not include_usage:
                    return None
                return CompletionResponse(id=count["id"], created=count["created"], model=target.name,
                                          choices=[], usage=_usage(prompt_tokens, count["n"]))

            return StreamingResponse(
                sse_from_chunks(target, lambda: target.llama.stream_complete(prompt, **params), render, finish),
                media_type="text/event-stream", headers=SSE_HEADERS,
            )

        def work() -> dict[str, Any]:
            target.llama.check_fits(prompt, req.max_tokens)
            return target.llama.complete(prompt, **params)

        out = (await run_timed(target, work)).result
        choice = out["choices"][0]
        return CompletionResponse(
            id=out["id"], created=out["created"], model=target.name,
            choices=[CompletionChoice(text=choice["text"], index=0, finish_reason=choice["finish_reason"])],
            usage=_usage(out["usage"]["prompt_tokens"], out["usage"]["completion_tokens"]),
        )

    @router.post("/chat/completions", response_model=ChatCompletionResponse, responses=ERRORS)
    async def chat_completions(req: ChatCompletionRequest, request: Request) -> Any:
        """Chat completion with the model's own chat template, as ``chat.completions.create``."""
        check_openai_params(req)
        target = pick_model(request, req.model)
        max_tokens = req.effective_max_tokens(target.llama.n_ctx)
        params = req.llama_params(max_tokens)
        messages = [m.as_llama() for m in req.messages]
        # The template adds a few tokens; the message text alone already tells most overflows.
        flat = "\n".join(m["content"] for m in messages)
        if req.stream:
            prompt_tokens = await prepare_stream(target, flat, max_tokens)
            include_usage = bool(req.stream_options and req.stream_options.include_usage)
            meta: dict[str, Any] = {"id": "", "created": 0, "n": 0}

            def render(chunk: dict[str, Any]) -> ChatCompletionChunk:
                choice = chunk["choices"][0]
                delta = choice.get("delta") or {}
                meta["id"], meta["created"] = chunk["id"], chunk["created"]
                meta["n"] += 1 if delta.get("content") else 0
                return ChatCompletionChunk(
                    id=chunk["id"], created=chunk["created"], model=target.name,
                    choices=[ChatChunkChoice(index=0, delta=ChatDelta(role=delta.get("role"),
                                                                      content=delta.get("content")),
                                             finish_reason=choice.get("finish_reason"))],
                )

            def finish() -> ChatCompletionChunk | None:
                if not include_usage:
                    return None
                return ChatCompletionChunk(id=meta["id"], created=meta["created"], model=target.name,
                                           choices=[], usage=_usage(prompt_tokens, meta["n"]))

            return StreamingResponse(
                sse_from_chunks(target, lambda: target.llama.stream_chat(messages, **params), render, finish),
                media_type="text/event-stream", headers=SSE_HEADERS,
            )

        def work() -> dict[str, Any]:
            target.llama.check_fits(flat, max_tokens)
            return target.llama.chat(messages, **params)

        out = (await run_timed(target, work)).result
        choice = out["choices"][0]
        return ChatCompletionResponse(
            id=out["id"], created=out["created"], model=target.name,
            choices=[ChatChoice(index=0, message=AssistantMessage(content=choice["message"].get("content")),
                                finish_reason=choice["finish_reason"])],
            usage=_usage(out["usage"]["prompt_tokens"], out["usage"]["completion_tokens"]),
        )

    return router
