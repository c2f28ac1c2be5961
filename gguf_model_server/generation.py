"""What every GGUF route shares: find the model, run or stream a generation under its guard."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

from fastapi import Request

from gguf_model_server.llama_backend import LlamaModel
from gguf_model_server.schemas import OpenAIParams
from serving_core.errors import BadRequest, ServingError, echo, error_body
from serving_core.registry import ManagedModel, ModelRegistry
from serving_core.streaming import sse_event

log = logging.getLogger("gguf_model_server.generation")


@dataclass
class Target:
    """A ready model picked for one request."""

    managed: ManagedModel

    @property
    def name(self) -> str:
        return self.managed.name

    @property
    def llama(self) -> LlamaModel:
        return self.managed.handle  # type: ignore[no-any-return]


def check_openai_params(req: OpenAIParams) -> None:
    """400 for a parameter that would change the result but is not implemented; unknown harmless
    ones (``user``, ``metadata``, …) are only logged."""
    unsupported = req.unsupported()
    if unsupported:
        raise BadRequest(f"not supported: {', '.join(unsupported)}; remove the parameter", param=unsupported[0])
    ignored = req.ignored()
    if ignored:
        log.info("ignoring parameters that change nothing here: %s", ", ".join(echo(k) for k in ignored))


def pick_model(request: Request, name: str | None) -> Target:
    """The ready model the request names (or the default); raises 404/503 as typed errors."""
    registry: ModelRegistry = request.app.state.registry
    return Target(registry.get(name))


@dataclass
class Timed:
    result: Any
    queue_seconds: float
    run_seconds: float


async def run_timed(target: Target, fn: Callable[[], Any]) -> Timed:
    """Run ``fn`` under the model's guard, measuring time spent queued and running."""
    t_enqueue = time.perf_counter()
    started: list[float] = []

    def work() -> Any:
        started.append(time.perf_counter())
        return fn()

    result = await target.managed.guard.run(work)
    t_end = time.perf_counter()
    return Timed(result, started[0] - t_enqueue, t_end - started[0])


async def prepare_stream(target: Target, prompt_for_count: str, max_tokens: int) -> int:
    """Checks that must fail with a proper status *before* a 200 stream starts; returns prompt tokens."""
    target.managed.guard.check_admission()
    # Tokenizing beside another request's decode is safe: it only reads the vocabulary
    # (llama_tokenize keeps no state in the context). peek() still counts the thread as inside the
    # model, so shutdown does not free the model under it.
    return await target.managed.guard.peek(target.llama.check_fits, prompt_for_count, max_tokens)


async def sse_from_chunks(
    target: Target,
    make_iter: Callable[[], Iterator[dict[str, Any]]],
    render: Callable[[dict[str, Any]], Any | None],
    finish: Callable[[], Any | None] = lambda: None,
) -> AsyncIterator[str]:
    """Server-sent events from a llama chunk iterator; ends with ``[DONE]``, errors become an error event."""
    try:
        async for chunk in target.managed.guard.stream(make_iter):
            event = render(chunk)
            if event is not None:
                yield sse_event(event)
        last = finish()
        if last is not None:
            yield sse_event(last)
    except ServingError as exc:
        yield sse_event(error_body(exc.code, exc.type, exc.message))
    except Exception:
        log.exception("generation failed mid-stream on model '%s'", target.name)
        yield sse_event(error_body("internal_error", "server_error", "generation failed; see the server log"))
    yield sse_event("[DONE]")
