"""The server's own routes: ``POST /generate`` and the original servers' ``POST /inference``."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from gguf_model_server.generation import pick_model, prepare_stream, run_timed, sse_from_chunks
from gguf_model_server.schemas import (
    GenerateRequest,
    GenerateResponse,
    GenerateStreamEvent,
    InferenceRequest,
    InferenceResponse,
    Timings,
    Usage,
    stop_list,
)
from serving_core.errors import error_responses
from serving_core.streaming import SSE_HEADERS

ERRORS = error_responses({400: "prompt does not fit the context window"})


def native_router() -> APIRouter:
    router = APIRouter(tags=["generation"])

    @router.post("/generate", response_model=GenerateResponse, responses=ERRORS)
    async def generate(req: GenerateRequest, request: Request) -> Any:
        """Continue a prompt. With ``stream: true`` the answer is server-sent events."""
        target = pick_model(request, req.model)
        params = req.llama_params(req.max_tokens)
        if req.stream:
            prompt_tokens = await prepare_stream(target, req.prompt, req.max_tokens)
            state: dict[str, Any] = {"n": 0, "finish": None, "t0": time.perf_counter(), "first": None}

            def render(chunk: dict[str, Any]) -> GenerateStreamEvent | None:
                choice = chunk["choices"][0]
                if state["first"] is None:
                    state["first"] = time.perf_counter()
                state["finish"] = choice.get("finish_reason") or state["finish"]
                if not choice["text"]:
                    return None
                state["n"] += 1
                return GenerateStreamEvent(model=target.name, text=choice["text"])

            def finish() -> GenerateStreamEvent:
                elapsed = time.perf_counter() - (state["first"] or state["t0"])
                return GenerateStreamEvent(
                    model=target.name, text="", finish_reason=state["finish"],
                    usage=Usage(prompt_tokens=prompt_tokens, completion_tokens=state["n"]),
                    timings=Timings(queue_seconds=0.0, generation_seconds=round(elapsed, 4),
                                    tokens_per_second=round(state["n"] / elapsed, 2) if elapsed > 0 else None),
                )

            return StreamingResponse(
                sse_from_chunks(target, lambda: target.llama.stream_complete(req.prompt, **params), render, finish),
                media_type="text/event-stream", headers=SSE_HEADERS,
            )

        def work() -> dict[str, Any]:
            target.llama.check_fits(req.prompt, req.max_tokens)
            return target.llama.complete(req.prompt, **params)

        timed = await run_timed(target, work)
        out = timed.result
        usage = out["usage"]
        n = usage["completion_tokens"]
        return GenerateResponse(
            model=target.name,
            text=out["choices"][0]["text"],
            finish_reason=out["choices"][0]["finish_reason"],
            usage=Usage(prompt_tokens=usage["prompt_tokens"], completion_tokens=n),
            timings=Timings(
                queue_seconds=round(timed.queue_seconds, 4),
                generation_seconds=round(timed.run_seconds, 4),
                tokens_per_second=round(n / timed.run_seconds, 2) if timed.run_seconds > 0 else None,
            ),
        )

    @router.post("/inference", response_model=InferenceResponse, responses=ERRORS)
    async def inference(req: InferenceRequest, request: Request) -> InferenceResponse:
        """The original servers' route: ``{model_name, prompt, ...}`` → ``{result}``."""
        target = pick_model(request, req.model_name)

        def work() -> dict[str, Any]:
            target.llama.check_fits(req.prompt, req.max_tokens)
            return target.llama.complete(req.prompt, max_tokens=req.max_tokens,
                                         temperature=req.temperature, stop=stop_list(req.stop))

        timed = await run_timed(target, work)
        return InferenceResponse(result=timed.result["choices"][0]["text"])

    return router
