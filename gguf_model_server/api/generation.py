"""What every generation API family shares: pick the model, tokenize, admit to its engine (every
check that can fail happens here, before a response starts), then wait for or stream the result.

An admitted generation holds a lease on its model until it ends: ``complete`` releases it when the
answer is ready, a stream when it ends however it ends (``GenerationStream``)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from typing import Any

from fastapi import Request

from gguf_model_server.api.protocol import Timings
from gguf_model_server.engine import Generation, GenerationRequest, GenerationStats, JobKind, PreparedJob
from gguf_model_server.generation_params import GenerationParams
from gguf_model_server.llama_backend import LlamaModel, llama_errors
from gguf_model_server.llama_native import GrammarError
from serving_core.errors import BadRequest, ServingError, error_responses
from serving_core.leases import Lease
from serving_core.metrics import ServerMetrics
from serving_core.registry import ModelRegistry
from serving_core.streaming import OPENAI_SSE, EventStream, StreamFraming

log = logging.getLogger("gguf_model_server.api.generation")

# The error answers every generation route documents (OpenAPI), beside the shared ones.
GENERATION_ERRORS = error_responses({400: "prompt does not fit the context window"})


class ClientDisconnected(ServingError):
    """The client went away before the answer was ready; nobody reads this response."""

    status_code = 499
    code = "client_closed_request"
    type = "invalid_request_error"


@dataclass(frozen=True)
class Admitted:
    """A request's generations (one per choice, ``n``) queued on a model's engine, holding its model's
    lease until ``close``."""

    model: str
    llama: LlamaModel
    generations: tuple[Generation, ...]
    prompt_tokens: int
    lease: Lease[LlamaModel]

    @property
    def generation(self) -> Generation:
        """The first choice (the only one unless ``n`` > 1)."""
        return self.generations[0]

    def cancel(self) -> None:
        """Stop generating (the client went away); the sequences are free at the engine's next step."""
        for generation in self.generations:
            self.llama.engine.cancel(generation)

    def close(self) -> None:
        """The response is over: stop generating if it still is, and release the model."""
        for generation in self.generations:
            if generation.stats is None:
                self.llama.engine.cancel(generation)
        self.lease.release()


@dataclass(frozen=True)
class Finished:
    """One choice's whole answer."""

    index: int
    text: str
    stats: GenerationStats
    generation: Generation


Tokenize = Callable[[LlamaModel, GenerationParams], list[int]]
"""A request's prompt tokens on a model (a chat may be shortened to leave its answer room)."""
OnModel = Callable[[LlamaModel, GenerationParams], GenerationParams]
"""A request's parameters made for the model it reached (a tool grammar in that model's call syntax)."""
TOKENS_PER_SECOND_BUCKETS = (1, 2, 5, 10, 20, 30, 40, 50, 75, 100, 150, 200, 400)


def timings(stats: GenerationStats) -> Timings:
    """The measured timings clients read (``timings`` on every response and final stream event)."""
    return Timings(
        queue_seconds=round(stats.queued_seconds, 4),
        prompt_seconds=round(stats.prompt_seconds, 4),
        prompt_tokens_cached=stats.cached_prompt_tokens,
        prompt_tokens_from_ram=stats.ram_cached_tokens,
        generation_seconds=round(stats.generation_seconds, 4),
        tokens_per_second=None if stats.tokens_per_second is None else round(stats.tokens_per_second, 2),
    )


def _prepare(llama: LlamaModel, tokenize: Tokenize, params: GenerationParams,
             on_model: OnModel | None) -> list[PreparedJob]:
    """The engine job for ``params`` on ``llama`` (a worker thread): every check that can fail, here."""
    if on_model is not None:
        params = on_model(llama, params)
    prompt = tokenize(llama, params)
    if params.max_tokens.requested is None:
        llama.engine.check_fits(len(prompt), 1)  # an empty or too-long prompt, before "what fits" is cut
    cache_prompt = llama.options.cache_prompt if params.cache_prompt is None else params.cache_prompt
    request = GenerationRequest(
        prompt=prompt, max_tokens=params.max_tokens.resolve(len(prompt), llama.n_ctx), sampling=params.sampling,
        stop=params.stop + (llama.chat_stops() if params.chat else ()),
        cache_prompt=cache_prompt, isolated=not cache_prompt, grammar=params.grammar,
        grammar_trigger=params.grammar_trigger, logprobs=params.logprobs,
    )
    jobs: list[PreparedJob] = []
    with llama_errors() as errors:
        try:
            for i in range(params.n):
                seed = request.sampling.seed
                # Independent choices: each its own seed (derived from the request's, so reproducible).
                sampling = replace(request.sampling, seed=None if seed is None else (seed + i) % 2**32)
                jobs.append(llama.engine.prepare(replace(request, sampling=sampling)))
        except GrammarError:
            reason = "; ".join(errors[-3:]) or "it does not parse"
            raise BadRequest(f"grammar: not valid GBNF (llama.cpp's parser: {reason}); the root rule is 'root'",
                             param="grammar") from None
        finally:
            if len(jobs) < params.n:
                for job in jobs:
                    job.close()
    return jobs


async def _until_disconnected(request: Request) -> None:
    # After the body was read, the next ASGI message is the disconnect (or the end of the response).
    while (await request.receive())["type"] != "http.disconnect":
        pass


class GenerationServing:
    """The engine-facing half of every generation route."""

    def __init__(self, registry: ModelRegistry[LlamaModel], metrics: ServerMetrics) -> None:
        self.registry = registry
        self.metrics = metrics

    def _record(self, model: str, stats: GenerationStats) -> None:
        m = self.metrics
        m.counter("prompt_tokens", "prompt tokens received", ["model"]).labels(model).inc(stats.prompt_tokens)
        m.counter("prompt_tokens_cached", "prompt tokens whose KV was reused", ["model"]).labels(model).inc(
            stats.cached_prompt_tokens)
        m.counter("generated_tokens", "tokens generated (sampled)", ["model"]).labels(model).inc(
            stats.completion_tokens)
        if stats.tokens_per_second is not None:
            m.histogram("decode_tokens_per_second", "per-request decode speed after the first token", ["model"],
                        TOKENS_PER_SECOND_BUCKETS).labels(model).observe(stats.tokens_per_second)

    async def admit(self, model: str | None, tokenize: Tokenize, params: GenerationParams,
                    on_model: OnModel | None = None) -> Admitted:
        """Find the model, tokenize, prepare the engine job and queue it; raises the typed 4xx/5xx
        errors before any response."""
        # Without a name: the first model that generates (an embedding model first in the config does not).
        default = self.registry.default_ready(lambda llama: llama.engine.kind is JobKind.GENERATE)
        lease = await self.registry.acquire(model or default)  # released by Admitted.close, or below on a refusal
        try:
            llama = lease.handle
            llama.engine.check_admission()  # cheap, and refuses before the (bounded) tokenizing work
            # Tokenizing and building the sampler beside running decodes is safe: they read only the
            # vocabulary. peek() counts the thread as inside the model, so shutdown does not free the
            # model under it.
            prepared = await lease.model.guard.peek(_prepare, llama, tokenize, params, on_model)
            generations = llama.engine.enqueue_choices(prepared)
        except BaseException:
            lease.release()
            raise
        return Admitted(model=lease.name, llama=llama, generations=tuple(generations),
                        prompt_tokens=len(prepared[0].request.prompt), lease=lease)

    async def complete(self, admitted: Admitted, request: Request) -> tuple[str, GenerationStats]:
        """The whole text and its stats (one choice)."""
        first = (await self.complete_choices(admitted, request))[0]
        return first.text, first.stats

    async def complete_choices(self, admitted: Admitted, request: Request) -> list[Finished]:
        """Every choice's whole text and stats; a client that hangs up meanwhile frees the sequences at
        once. The model's lease ends here."""
        async def texts() -> list[str]:
            # One task, not asyncio.gather: a cancelled gather whose child was cancelled first ends
            # with an exception nobody retrieves (logged at shutdown). The choices run on the engine
            # meanwhile either way; their pieces wait in their queues.
            return [await g.text() for g in admitted.generations]

        answer: asyncio.Future[list[str]] = asyncio.ensure_future(texts())
        gone: asyncio.Future[None] = asyncio.ensure_future(_until_disconnected(request))
        waited: set[asyncio.Future[Any]] = {answer, gone}
        try:
            await asyncio.wait(waited, return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
            if not answer.done():
                answer.cancel()
            admitted.close()
        if not answer.done() or answer.cancelled():
            raise ClientDisconnected("the client closed the connection; the generation was stopped")
        finished = []
        for i, (text, generation) in enumerate(zip(answer.result(), admitted.generations, strict=True)):
            assert generation.stats is not None
            self._record(admitted.model, generation.stats)
            finished.append(Finished(i, text, generation.stats, generation))
        return finished

    async def events(self, admitted: Admitted) -> AsyncIterator[str | GenerationStats]:
        """Text pieces, then the stats (one choice); leaving early (client gone) frees the sequence at once."""
        try:
            async for piece in admitted.generation.pieces():
                yield piece
            stats = admitted.generation.stats
            assert stats is not None
            self._record(admitted.model, stats)
            yield stats
        finally:
            admitted.cancel()

    async def choice_events(self, admitted: Admitted) -> AsyncIterator[tuple[int, str | GenerationStats]]:
        """Every choice's text pieces, then its stats, each with the choice's index, as they come."""
        if len(admitted.generations) == 1:  # no merging: one choice's pieces go straight through
            async for only in self.events(admitted):
                yield 0, only
            return
        merged: asyncio.Queue[tuple[int, str | GenerationStats] | BaseException | None] = asyncio.Queue()

        async def follow(index: int, generation: Generation) -> None:
            try:
                async for piece in generation.pieces():
                    await merged.put((index, piece))
                assert generation.stats is not None
                self._record(admitted.model, generation.stats)
                await merged.put((index, generation.stats))
            except BaseException as exc:  # noqa: BLE001 - handed to the reader, which raises it
                await merged.put(exc)
            finally:
                await merged.put(None)

        tasks = [asyncio.ensure_future(follow(i, g)) for i, g in enumerate(admitted.generations)]
        try:
            running = len(tasks)
            while running:
                item = await merged.get()
                if item is None:
                    running -= 1
                elif isinstance(item, BaseException):
                    raise item
                else:
                    yield item
        finally:
            for task in tasks:
                task.cancel()
            admitted.cancel()


class GenerationStream(EventStream):
    """The streamed events of one generation (OpenAI's server-sent events unless ``framing`` says
    otherwise). However the response ends, the generation is closed (cancelled if still running,
    its model's lease released)."""

    def __init__(self, admitted: Admitted, events: AsyncIterator[object], framing: StreamFraming = OPENAI_SSE) -> None:
        super().__init__(events, admitted.close, admitted.model, framing, what="generation")
