"""The GGUF serving engine: continuous batching of N sequences per model on one loop thread.

Design after llama.cpp's ``tools/server/server-context.cpp``: each model has ``parallel`` slots
(llama.cpp sequences, each with its own ``n_ctx`` of KV). One thread per model runs steps: a step
puts the next token of every generating slot and prompt chunks of newly admitted slots into one
batch, decodes it once (holding a server-wide compute slot, so models interleave per step), then
samples every slot that has logits with its own native sampler chain. Text pieces reach the waiting
request on the event loop through ``Generation``; a finished, cancelled or disconnected request frees
its slot at the next step. A slot keeps the KV of its last prompt and answer, so a new prompt that
shares a prefix with it (a repeated system prompt, the next chat turn) skips that prefix.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from gguf_model_server.embedding_jobs import Embeddings, EmbeddingStats, EmbedJob, normalized
from gguf_model_server.generation_params import GrammarTrigger, SamplingConfig
from gguf_model_server.llama_native import (
    Batch,
    ContextShape,
    NativeContext,
    NativeModel,
    Sampler,
    SequenceState,
)
from gguf_model_server.logprobs import TokenLogprob, token_logprob
from gguf_model_server.prompt_cache import PromptCache, common_prefix
from gguf_model_server.text_output import TextOutput
from serving_core.compute import ComputeSlots
from serving_core.errors import BadRequest, ModelFailed, Overloaded, ServerShuttingDown, ServingError
from serving_core.scheduling import CallTimes

log = logging.getLogger("gguf_model_server.engine")

FinishReason = Literal["stop", "length"]


class JobKind(enum.Enum):
    """What a job asks of the model (llama-server's task type)."""

    GENERATE = "generate"  # evaluate the prompt, then sample tokens one by one
    EMBED = "embed"  # evaluate each input, read its pooled vector (an embedding model's context)


class SlotState(enum.Enum):
    """Where a sequence is in its job (llama-server's ``slot_state``)."""

    IDLE = "idle"  # no job; its KV (``cache``) is kept for a prompt that shares a prefix
    STARTED = "started"  # a job was admitted; the KV prefix to keep is chosen at its first step
    PROMPT = "prompt"  # the prompt is being evaluated, chunk by chunk
    GENERATING = "generating"  # a token was sampled and is fed at the next step


@dataclass(frozen=True)
class GenerationRequest:
    """What to generate: prompt tokens, a hard ``max_tokens``, sampling and stop strings.

    ``cache_prompt=False`` re-evaluates the whole prompt instead of reusing a slot's matching KV
    prefix (whose logits were computed in another batch shape, so a greedy answer can differ in
    the last bits); ``isolated=True`` also keeps other sequences out of this one's decodes. The
    two together make the output independent of what ran before or beside the request.
    """

    prompt: list[int]
    max_tokens: int
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    stop: tuple[str, ...] = ()
    cache_prompt: bool = True
    isolated: bool = False
    grammar: str | None = None  # GBNF (root rule "root"); compiled in ``prepare``
    grammar_trigger: GrammarTrigger | None = None  # a lazy grammar's start; None: it holds from the first token
    logprobs: int | None = None  # report each token's logprob and this many alternatives; None: off


@dataclass(frozen=True)
class GenerationStats:
    """Measured accounting of one finished generation."""

    finish_reason: FinishReason
    prompt_tokens: int
    completion_tokens: int  # tokens sampled, the end-of-generation token excluded
    cached_prompt_tokens: int  # prompt tokens whose KV was reused, not re-evaluated
    queued_seconds: float
    prompt_seconds: float  # admission → first token sampled
    generation_seconds: float  # first token sampled → finished
    tokens: tuple[int, ...] = ()  # the tokens sampled, in order (for tests and diagnostics)
    decode_steps: int = 0  # samples taken, the end-of-generation token included
    ram_cached_tokens: int = 0  # of cached_prompt_tokens: restored from the RAM prompt cache
    stop_string: str | None = None  # the stop string that ended the text (finish_reason "stop"), if one did

    @property
    def tokens_per_second(self) -> float | None:
        """Decode speed after the first token (which the prompt's evaluation produced)."""
        if self.decode_steps < 2 or self.generation_seconds <= 0:
            return None
        return (self.decode_steps - 1) / self.generation_seconds


class Generation:
    """The request-side handle of one generation: iterate for text pieces, then read ``stats``.

    Fed from the engine thread through the event loop; ``cancel`` (client gone) frees the slot at
    the engine's next step.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._queue: asyncio.Queue[str | TokenLogprob | GenerationStats | BaseException] = asyncio.Queue()
        self.cancelled = False
        self.stats: GenerationStats | None = None
        self.logprobs: list[TokenLogprob] = []  # one per token generated so far (when asked for)
        self._logprobs_taken = 0

    # engine thread side
    def _push(self, item: str | TokenLogprob | GenerationStats | BaseException) -> None:
        with contextlib.suppress(RuntimeError):  # a closed event loop: nobody is waiting any more
            self._loop.call_soon_threadsafe(self._queue.put_nowait, item)

    def cancel(self) -> None:
        self.cancelled = True

    async def pieces(self) -> AsyncIterator[str]:
        """Text as it is generated (never a partial character or part of a stop string). The tokens'
        logprobs, when asked for, arrive before the text they make (``take_logprobs``)."""
        while True:
            item = await self._queue.get()
            if isinstance(item, GenerationStats):
                self.stats = item
                return
            if isinstance(item, BaseException):
                raise item
            if isinstance(item, TokenLogprob):
                self.logprobs.append(item)
                continue
            yield item

    def take_logprobs(self) -> list[TokenLogprob]:
        """The logprobs that arrived since the last call (a stream sends them with its next piece)."""
        new = self.logprobs[self._logprobs_taken:]
        self._logprobs_taken = len(self.logprobs)
        return new

    async def text(self) -> str:
        """The whole text, after the generation finished."""
        return "".join([piece async for piece in self.pieces()])


class PreparedJob:
    """A request checked against the model and with its sampler built, ready to queue (``Engine.enqueue``).

    Built in a worker thread before any response starts: whatever can fail has failed by then. The
    native sampler is freed when the job ends, or when a prepared job is dropped unqueued.
    """

    def __init__(self, request: GenerationRequest, sampler: Sampler, kind: JobKind = JobKind.GENERATE) -> None:
        self.request = request
        self.sampler = sampler
        self.kind = kind

    def close(self) -> None:
        self.sampler.close()


@dataclass
class StepTiming:
    """Where the engine thread's steps went, in seconds since start (read by /metrics): the rest of
    ``step`` beyond ``decode`` and ``compute_wait`` is the Python around llama.cpp (batch building,
    sampling, stop strings, handing text to the event loop)."""

    step: float = 0.0
    decode: float = 0.0  # llama_decode
    compute_wait: float = 0.0  # waiting for a compute slot (another model decoding)


@dataclass(eq=False)
class _Group:
    """The choices of one request (``n``): the leader evaluates the prompt, and each other choice
    starts from a copy of its KV (``llama_memory_seq_cp``) instead of evaluating it again."""

    leader: _Job
    leader_slot: _Slot | None = None  # where the leader runs, once admitted

    def ready_for(self, job: _Job) -> bool:
        """Whether ``job`` may start: the leader itself, or another choice once the leader's prompt
        is evaluated (or the leader is gone: then it evaluates the prompt itself)."""
        if job is self.leader or self.leader.handle.cancelled:  # a leader dropped unstarted leads nobody
            return True
        slot = self.leader_slot
        return slot is not None and (slot.job is not self.leader or slot.state is SlotState.GENERATING)


@dataclass(eq=False)
class _Job:
    prepared: PreparedJob
    handle: Generation
    submitted: float
    group: _Group | None = None
    admitted: float = 0.0
    first_token: float = 0.0
    output: TextOutput | None = None
    sampled: list[int] = field(default_factory=list)
    cached: int = 0
    ram_restored: int = 0  # of ``cached``: tokens whose KV came back from the RAM prompt cache

    @property
    def request(self) -> GenerationRequest:
        return self.prepared.request

    @property
    def sampler(self) -> Sampler:
        return self.prepared.sampler


@dataclass
class _Slot:
    seq: int
    cache: list[int] = field(default_factory=list)  # tokens whose KV the sequence holds, in order
    job: _Job | None = None
    state: SlotState = SlotState.IDLE
    next_token: int = -1  # sampled, to be fed at the next step (GENERATING)
    logits_at: int = -1  # batch index to sample from after this step's decode
    fed: int = 0  # tokens of this slot in this step's batch
    last_used: float = 0.0

    @property
    def generating(self) -> bool:
        return self.state is SlotState.GENERATING

    @property
    def n_past(self) -> int:
        return len(self.cache)


class Engine:
    """Continuous batching over one model (see the module docstring)."""

    def __init__(self, name: str, model: NativeModel, shape: ContextShape, compute: ComputeSlots,
                 max_waiting: int, banned: Callable[[], list[int]], cache_ram_bytes: int = 0) -> None:
        self.name = name
        self.model = model
        self.shape = shape
        self.max_waiting = max_waiting
        self._compute = compute
        self.ctx = NativeContext(model, shape)
        self._batch = Batch(self.ctx.n_batch)
        self._slots = [_Slot(seq=i) for i in range(shape.n_seq)]
        self._pending: deque[_Job] = deque()
        self._embed_pending: deque[EmbedJob] = deque()
        self.kind = JobKind.EMBED if shape.embeddings else JobKind.GENERATE  # what this context computes
        self._cv = threading.Condition()
        self._stopping = False
        self._banned = banned  # tokens never to sample (computed once, on first use)
        self._banned_ids: np.ndarray | None = None
        self.prompt_cache: PromptCache[SequenceState] = PromptCache(cache_ram_bytes)
        self.timing = StepTiming()
        self.request_times = CallTimes()
        self.failure: str | None = None  # set if the loop died: the model then answers 503, not "shutting down"
        self._thread = threading.Thread(target=self._run, name=f"engine-{name}", daemon=True)

    def start(self) -> None:
        """Start the loop thread (once everything ``banned`` needs exists)."""
        self._thread.start()

    @property
    def n_ctx(self) -> int:
        """Context window of one sequence, in tokens."""
        return self.shape.n_ctx_seq

    # -- request side (event loop) -------------------------------------------------------------

    def check_fits(self, n_prompt: int, max_tokens: int) -> None:
        if n_prompt == 0:
            raise BadRequest("the prompt is empty after tokenizing; send some text", param="prompt")
        if n_prompt >= self.n_ctx:
            raise BadRequest(f"prompt is {n_prompt} tokens but the model's context window is {self.n_ctx} "
                             "tokens (options.n_ctx); shorten the prompt", param="prompt")
        if n_prompt + max_tokens > self.n_ctx:
            raise BadRequest(f"prompt ({n_prompt} tokens) + max_tokens ({max_tokens}) exceeds the context "
                             f"window of {self.n_ctx} tokens (options.n_ctx); lower max_tokens to at most "
                             f"{self.n_ctx - n_prompt}",
                             param="max_tokens")

    def kv_cache_cells(self) -> tuple[int, int]:
        """(cells held by sequences serving a request, all cells). An idle sequence's cached prompt is
        not counted: the next request may reuse it or overwrite it, so it is no pressure. Read
        without the loop's lock: a scrape may see a step half done, never a wrong order of magnitude."""
        used = sum(len(slot.cache) for slot in self._slots if slot.job is not None)
        return used, self.shape.n_ctx_seq * self.shape.n_seq

    def retry_after(self) -> float:
        waves = (self.waiting // max(1, len(self._slots))) + 1
        return self.request_times.retry_after(waves)

    def check_admission(self, jobs: int = 1) -> None:
        """Raise now if ``jobs`` new jobs could not be taken: shutting down (503) or queue full (429)."""
        if self.failure is not None:
            raise ModelFailed(f"model '{self.name}' is unavailable: {self.failure}")
        if self._stopping:
            raise ServerShuttingDown(f"the server is shutting down; model '{self.name}' takes no new requests")
        busy = self.active + self.waiting + jobs - 1
        if busy >= len(self._slots) + self.max_waiting:
            raise Overloaded(f"model '{self.name}' is busy: {len(self._slots)} sequences running and "
                             f"{len(self._pending)} requests waiting; retry in about {self.retry_after():.0f} s",
                             retry_after=self.retry_after())

    def prepare(self, request: GenerationRequest) -> PreparedJob:
        """Check the request against the model and build its sampler (in a worker thread: the first
        call may scan the vocabulary). Raises the 400s; nothing is queued yet."""
        if self.kind is JobKind.EMBED:
            raise BadRequest(f"model '{self.name}' serves embeddings (options.embeddings: true), not generation; "
                             "use /v1/embeddings, or another model", param="model")
        self.check_fits(len(request.prompt), request.max_tokens)
        sampling = request.sampling
        sampler = Sampler(self.model, sampling, self._banned(), request.grammar, trigger=request.grammar_trigger)
        if sampling.penalized:
            sampler.accept_prompt(request.prompt[-sampling.penalty_last_n:])
        return PreparedJob(request, sampler)

    def enqueue(self, prepared: PreparedJob) -> Generation:
        """Queue a prepared job (on the event loop); 429/503 now if it cannot be taken, its sampler
        freed then."""
        return self.enqueue_choices([prepared])[0]

    def enqueue_choices(self, prepared: list[PreparedJob]) -> list[Generation]:
        """Queue the jobs of one request's choices (same prompt) together: the first evaluates the
        prompt, the others copy its KV. At most one per sequence (``parallel``)."""
        loop = asyncio.get_running_loop()
        now = time.perf_counter()
        jobs = [_Job(prepared=p, handle=Generation(loop), submitted=now) for p in prepared]
        if len(jobs) > 1:
            group = _Group(leader=jobs[0])
            for job in jobs:
                job.group = group
        with self._cv:
            try:
                if len(jobs) > len(self._slots):
                    raise BadRequest(f"n={len(jobs)} choices, but model '{self.name}' runs at most "
                                     f"{len(self._slots)} sequences at once (options.parallel); lower n", param="n")
                self.check_admission(len(jobs))
            except ServingError:
                for p in prepared:
                    p.close()
                raise
            self._pending.extend(jobs)
            self._cv.notify()
        return [job.handle for job in jobs]

    def check_embeddable(self, inputs: list[list[int]]) -> None:
        """400 unless this is an embedding model and every input fits one sequence and one decode."""
        if self.kind is not JobKind.EMBED:
            raise BadRequest(f"model '{self.name}' is not served for embeddings (its context computes logits); "
                             "use an embedding model, or set options.embeddings: true on this one", param="model")
        limit = min(self.n_ctx, self._batch.capacity)
        for i, tokens in enumerate(inputs):
            if not tokens:
                raise BadRequest(f"input {i} is empty after tokenizing; send some text", param="input")
            if len(tokens) > limit:
                raise BadRequest(f"input {i} is {len(tokens)} tokens; model '{self.name}' embeds at most {limit} "
                                 "(options.n_ctx and n_batch); shorten it or split it", param="input")

    def enqueue_embedding(self, inputs: list[list[int]]) -> Embeddings:
        """Queue one request's inputs (checked by ``check_embeddable``); 429/503 now if it cannot be taken."""
        handle = Embeddings(asyncio.get_running_loop())
        with self._cv:
            self.check_admission()
            self._embed_pending.append(EmbedJob(inputs=inputs, handle=handle, submitted=time.perf_counter()))
            self._cv.notify()
        return handle

    def submit(self, request: GenerationRequest) -> Generation:
        """``prepare`` and ``enqueue`` in one call, on the event loop (tests and tools)."""
        return self.enqueue(self.prepare(request))

    def cancel(self, handle: Generation | Embeddings) -> None:
        """Stop a job whose client went away; its slot is free at the next step."""
        handle.cancel()
        with self._cv:
            for job in list(self._pending):
                if job.handle is handle:
                    self._pending.remove(job)
                    job.prepared.close()
            for embed in list(self._embed_pending):
                if embed.handle is handle and embed.next_input == 0:
                    self._embed_pending.remove(embed)

    @property
    def active(self) -> int:
        return sum(s.state is not SlotState.IDLE for s in self._slots)

    def slot_states(self) -> list[SlotState]:
        """Each sequence's state, in sequence order (a snapshot, for tests and metrics)."""
        return [s.state for s in self._slots]

    @property
    def waiting(self) -> int:
        return len(self._pending) + len(self._embed_pending)

    # -- lifecycle -----------------------------------------------------------------------------

    def interrupt(self) -> None:
        """Shutdown: stop the loop, fail every running and waiting request with 503."""
        if self.active or self.waiting:
            log.info("model '%s': interrupting its running calls for shutdown (%d running, %d waiting)", self.name,
                     self.active, self.waiting)
        with self._cv:
            self._stopping = True
            self._cv.notify_all()
        self.ctx.abort_decodes()

    def close(self, timeout: float = 30.0, free_model: bool = True) -> None:
        """Stop the loop thread, then free the context and (unless ``free_model`` is off: a model put
        to sleep keeps its weights) the model, never under a running decode."""
        self.interrupt()
        if self._thread.is_alive():
            self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning("model '%s': engine thread still running after %.0f s; not freeing it", self.name, timeout)
            return
        self._batch.close()
        self.ctx.close()
        if free_model:
            self.model.close()

    # -- engine thread -------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._banned()  # the vocabulary scan, now rather than in the first request
        except Exception:
            log.exception("model '%s': scanning the vocabulary failed (retried at the first request)", self.name)
        try:
            while True:
                with self._cv:
                    while not self._stopping and not self._pending and not self._embed_pending and not self.active:
                        self._cv.wait()
                    if self._stopping:
                        break
                    self._admit()
                started = time.perf_counter()
                if self.kind is JobKind.EMBED:
                    self._embed_step()
                else:
                    self._step()
                self.timing.step += time.perf_counter() - started
        except BaseException:  # the engine must fail its requests, not hang them
            log.exception("model '%s': engine loop failed", self.name)
            self.failure = "its engine stopped after an internal error (see the server log)"
            self._fail_all(ServingError("generation failed; see the server log"))
        else:
            self._fail_all(ServerShuttingDown("the server is shutting down; the generation was stopped"))

    def _token_bytes(self, token: int) -> bytes:
        # An end-of-generation token among the alternatives is named (<|im_end|>), not shown as "".
        return self.model.piece(token) or self.model.token_text(token).encode()

    def _banned_array(self) -> np.ndarray:
        if self._banned_ids is None:
            self._banned_ids = np.asarray(self._banned(), dtype=np.intp)
        return self._banned_ids

    def _fail_all(self, exc: ServingError) -> None:
        with self._cv:
            self._stopping = True
            jobs = list(self._pending)
            self._pending.clear()
            embeds = list(self._embed_pending)
            self._embed_pending.clear()
        for embed in embeds:
            embed.handle._resolve(exc)
        for job in jobs:
            job.prepared.close()
        for slot in self._slots:
            if slot.job is not None:
                jobs.append(slot.job)
                self._release(slot)
        for job in jobs:
            job.handle._push(exc)

    def _admit(self) -> None:
        """Give waiting requests free slots: the slot whose cached tokens share the longest prefix
        with the prompt (its KV is reused), else the least recently used one."""
        while self._pending:
            free = [s for s in self._slots if s.state is SlotState.IDLE]
            if not free:
                return
            # The first waiting job that may start (a choice waits for its leader's prompt).
            job = next((j for j in self._pending if j.group is None or j.group.ready_for(j)), None)
            if job is None:
                return
            self._pending.remove(job)
            if job.handle.cancelled:
                job.prepared.close()
                continue
            prompt = job.request.prompt
            slot = max(free, key=lambda s: (common_prefix(s.cache, prompt), -s.last_used))
            job.admitted = time.perf_counter()
            slot.job = job
            slot.state = SlotState.STARTED
            slot.next_token = -1
            if job.group is not None and job.group.leader is job:
                job.group.leader_slot = slot

    def _start_prompt(self, slot: _Slot, job: _Job) -> None:
        """First step of a job: reuse the slot's matching KV prefix, set up its text output."""
        prompt = job.request.prompt
        keep = common_prefix(slot.cache, prompt) if job.request.cache_prompt else 0
        if self.prompt_cache.worth_saving(slot.cache, keep):  # the KV to be overwritten: kept in RAM
            self.prompt_cache.save(slot.cache, self.ctx.save_sequence(slot.seq))
        source = job.group.leader_slot if job.group is not None and job.group.leader is not job else None
        if source is not None and source is not slot and common_prefix(source.cache, prompt) > keep:
            self.ctx.copy_sequence(source.seq, slot.seq)  # the choice starts from the leader's prompt
            slot.cache = list(source.cache)
            keep = common_prefix(slot.cache, prompt)
        elif job.request.cache_prompt and self.prompt_cache.limit_bytes and keep < len(prompt) - 1:
            saved = self.prompt_cache.take(prompt, better_than=keep)
            if saved is not None:
                restored = self.ctx.restore_sequence(slot.seq, saved.state)
                slot.cache = list(saved.tokens) if restored else []
                keep = common_prefix(slot.cache, prompt)
                job.ram_restored = keep
        keep = min(keep, len(prompt) - 1)  # the last prompt token is evaluated again for its logits
        if not self.ctx.forget(slot.seq, keep):
            keep = 0  # this model's memory cannot be cut part-way: the sequence was dropped whole
        del slot.cache[keep:]
        job.cached = keep
        job.output = TextOutput(list(job.request.stop))
        slot.state = SlotState.PROMPT

    def _step(self) -> None:
        batch = self._batch
        batch.clear()
        for slot in self._slots:
            slot.fed, slot.logits_at = 0, -1
            if slot.job is not None and slot.job.handle.cancelled:
                self._release(slot)
        slots = [s for s in self._slots if s.job is not None]
        isolated = next((s.job for s in slots if s.job and s.job.request.isolated), None)
        if isolated is not None:  # an isolated request's decodes hold only its own tokens (its choices')
            group = isolated.group
            slots = [s for s in slots if s.job is isolated or (group is not None and s.job is not None
                                                                and s.job.group is group)]
        for slot in slots:
            if slot.generating and batch.free:
                slot.logits_at = batch.add(slot.next_token, slot.n_past, slot.seq, True)
                slot.fed = 1
        for slot in sorted((s for s in slots if not s.generating), key=lambda s: s.job.admitted if s.job else 0):
            job = slot.job
            if job is None or not batch.free:
                continue
            if slot.state is SlotState.STARTED and not self._guarded(slot, self._start_prompt, slot, job):
                continue
            prompt = job.request.prompt
            chunk = prompt[slot.n_past: slot.n_past + batch.free]
            for k, token in enumerate(chunk):
                pos = slot.n_past + k
                index = batch.add(token, pos, slot.seq, pos == len(prompt) - 1)
                if pos == len(prompt) - 1:
                    slot.logits_at = index
            slot.fed = len(chunk)
        if batch.n == 0:
            return
        waited = time.perf_counter()
        with self._compute.held():
            started = time.perf_counter()
            rc = self.ctx.decode(batch)
            self.timing.decode += time.perf_counter() - started
        self.timing.compute_wait += started - waited
        if rc != 0:
            self._decode_failed(rc, slots)
            return
        for slot in slots:
            job = slot.job
            if job is None or not slot.fed:
                continue
            if slot.generating:
                slot.cache.append(slot.next_token)
            else:
                slot.cache.extend(job.request.prompt[slot.n_past: slot.n_past + slot.fed])
            if slot.logits_at >= 0:
                self._guarded(slot, self._sample, slot, job)

    def _guarded(self, slot: _Slot, step: Callable[[_Slot, _Job], None], *args: Any) -> bool:
        """Run one job's part of a step; a Python error fails that request (500), not the engine."""
        try:
            step(*args)
            return True
        except Exception:
            log.exception("model '%s': generation failed", self.name)
            if slot.job is not None:
                slot.job.handle._push(ServingError("generation failed; see the server log"))
                self.ctx.forget(slot.seq, 0)
                slot.cache.clear()
                self._release(slot)
            return False

    def _sample(self, slot: _Slot, job: _Job) -> None:
        assert job.output is not None
        token = job.sampler.sample(self.ctx, slot.logits_at)
        now = time.perf_counter()
        if not job.first_token:
            job.first_token = now
        if self.model.is_eog(token):
            self._finish(slot, job, "stop", now)
            return
        job.sampled.append(token)
        if job.request.logprobs is not None:
            job.handle._push(token_logprob(self.ctx.logits(slot.logits_at, self.model.n_vocab), token,
                                           job.request.logprobs, self._banned_array(), self._token_bytes))
        text = job.output.feed(self.model.piece(token))
        if text:
            job.handle._push(text)
        if job.output.stopped:
            self._finish(slot, job, "stop", now)
        elif len(job.sampled) >= job.request.max_tokens:
            self._finish(slot, job, "length", now)
        else:
            slot.next_token = token
            slot.state = SlotState.GENERATING

    def _finish(self, slot: _Slot, job: _Job, reason: FinishReason, now: float) -> None:
        assert job.output is not None
        rest = job.output.flush()
        if rest:
            job.handle._push(rest)
        stats = GenerationStats(
            finish_reason=reason,
            prompt_tokens=len(job.request.prompt),
            completion_tokens=len(job.sampled),
            cached_prompt_tokens=job.cached,
            queued_seconds=job.admitted - job.submitted,
            prompt_seconds=job.first_token - job.admitted,
            generation_seconds=now - job.first_token,
            tokens=tuple(job.sampled),
            decode_steps=len(job.sampled) + (reason == "stop" and not job.output.stopped),
            ram_cached_tokens=min(job.ram_restored, job.cached),
            stop_string=job.output.stop_string,
        )
        self.request_times.observe(now - job.admitted)
        self._release(slot)  # free before the answer ends: a client told "done" finds the sequence free
        job.handle._push(stats)

    def _release(self, slot: _Slot) -> None:
        job = slot.job
        if job is not None:
            job.prepared.close()
        slot.job = None
        slot.state = SlotState.IDLE
        slot.next_token = -1
        slot.last_used = time.perf_counter()

    def _embed_step(self) -> None:
        """One decode of as many waiting inputs as fit (each its own sequence, whole), then each one's
        pooled vector; a request is answered once all its inputs are."""
        batch = self._batch
        batch.clear()
        with self._cv:
            jobs = list(self._embed_pending)
        taken: list[tuple[EmbedJob, int, int]] = []  # (job, input, sequence)
        now = time.perf_counter()
        for job in jobs:
            if job.handle.cancelled:
                job.next_input = len(job.inputs)
                job.vectors = [np.zeros(0, np.float32)] * len(job.inputs)  # done: dropped below
        # Round robin over the waiting requests, oldest first, each one's inputs in order: a request of
        # one sentence is not kept waiting behind one of two thousand.
        added = True
        while added and len(taken) < len(self._slots):
            added = False
            for job in jobs:
                if job.next_input >= len(job.inputs) or len(taken) >= len(self._slots):
                    continue
                tokens = job.inputs[job.next_input]
                if len(tokens) > batch.free:
                    continue  # next decode: the oldest request picks first then
                seq = len(taken)
                for pos, token in enumerate(tokens):
                    batch.add(token, pos, seq, True)
                taken.append((job, job.next_input, seq))
                job.next_input += 1
                job.started = job.started or now
                added = True
        if batch.n:
            waited = time.perf_counter()
            with self._compute.held():
                started = time.perf_counter()
                rc = self.ctx.decode(batch)
                took = time.perf_counter() - started
            self.timing.decode += took
            self.timing.compute_wait += started - waited
            for job in {job for job, _, _ in taken}:
                job.compute += took
            for job, index, seq in taken:
                vector = self.ctx.sequence_embedding(seq) if rc == 0 else None
                if vector is None:
                    job.handle._resolve(ServingError(f"model '{self.name}': the embedding decode failed (code {rc})"))
                    job.handle.cancel()
                    vector = np.zeros(0, np.float32)
                job.vectors[index] = normalized(vector)
                self.ctx.forget(seq)
        done = [job for job in jobs if job.done]
        with self._cv:
            for job in done:
                self._embed_pending.remove(job)
        end = time.perf_counter()
        for job in done:
            if job.handle.cancelled:
                continue
            vectors = [v for v in job.vectors if v is not None]
            stats = EmbeddingStats(prompt_tokens=sum(map(len, job.inputs)), queued_seconds=job.started - job.submitted,
                                   compute_seconds=job.compute)
            self.request_times.observe(end - job.started)
            job.handle._resolve(vectors, stats)

    def _decode_failed(self, rc: int, slots: list[_Slot]) -> None:
        # On abort or error, part of the batch may be in the KV: the slots' caches are unknown now.
        for slot in slots:
            self.ctx.forget(slot.seq, 0)
            slot.cache.clear()
        if self._stopping:
            return  # the loop ends and fails every request with 503
        log.error("model '%s': llama_decode returned %d for a batch of %d tokens", self.name, rc, self._batch.n)
        for slot in slots:
            if slot.job is not None and slot.fed:
                slot.job.handle._push(ServingError("generation failed; see the server log"))
                self._release(slot)
