"""Ollama's API as a translation over the chat, completion and embedding servings (one generation
path): requests become theirs, answers become Ollama's objects or its NDJSON stream. Models are
configured, not pulled: the model-management routes answer 501."""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from typing import Any, ClassVar

from fastapi import Request

from gguf_model_server.api.chat_completion.answer import ChoiceEnd, TextDelta, ToolCallDone
from gguf_model_server.api.chat_completion.protocol import ChatCompletionRequest, ResponseToolCall
from gguf_model_server.api.chat_completion.serving import ChatServing
from gguf_model_server.api.completion.protocol import CompletionRequest
from gguf_model_server.api.completion.serving import CompletionServing
from gguf_model_server.api.embeddings.serving import EmbeddingResult, EmbeddingServing
from gguf_model_server.api.generation import Admitted, GenerationStream
from gguf_model_server.api.ollama.protocol import (
    KeepAlive,
    OllamaAssistantMessage,
    OllamaChatChunk,
    OllamaChatRequest,
    OllamaChatResponse,
    OllamaDurations,
    OllamaEmbeddingsRequest,
    OllamaEmbeddingsResponse,
    OllamaEmbedRequest,
    OllamaEmbedResponse,
    OllamaFunctionCallOut,
    OllamaGenerateChunk,
    OllamaGenerateRequest,
    OllamaGenerateResponse,
    OllamaGenerationFields,
    OllamaListedModel,
    OllamaModelDetails,
    OllamaPsResponse,
    OllamaRunningModel,
    OllamaShowResponse,
    OllamaTagsResponse,
    OllamaToolCallOut,
)
from gguf_model_server.api.translation import chat_request, translated
from gguf_model_server.engine import GenerationStats, JobKind
from gguf_model_server.generation_params import CHAT_DEFAULT_MAX_TOKENS
from gguf_model_server.llama_backend import LlamaModel
from serving_core.errors import BadRequest, echo
from serving_core.registry import ManagedModel, ModelRegistry, ModelState
from serving_core.streaming import StreamFraming

log = logging.getLogger("gguf_model_server.api.ollama")

OLLAMA_API_VERSION = "0.12.0"
"""The Ollama release whose API these routes follow (clients compare versions to pick features)."""
FOREVER = "9999-12-31T23:59:59Z"  # expires_at of a model kept loaded (keep_alive < 0)
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_SAMPLING = ("temperature", "top_p", "top_k", "min_p", "seed", "repeat_penalty", "presence_penalty",
             "frequency_penalty", "stop")


def ollama_error(status: int, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """The one error shape as Ollama's ``{"error": "..."}`` (a request Ollama would call invalid is a
    400 there, where the other routes answer 422)."""
    return 400 if status == 422 else status, {"error": body.get("error", {}).get("message", "error")}


OLLAMA_NDJSON = StreamFraming(
    media_type="application/x-ndjson",
    frame=lambda e: (e.model_dump_json(exclude_none=True) if hasattr(e, "model_dump_json") else json.dumps(e)) + "\n",
    error=lambda exc: {"error": exc.message})


def keep_alive_seconds(value: KeepAlive) -> float | None:
    """Ollama's ``keep_alive`` in seconds (negative: forever); None when not given."""
    if value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    text = value.strip()
    try:
        return float(text)
    except ValueError:
        pass
    sign = -1.0 if text.startswith("-") else 1.0
    body = text.lstrip("+-")
    parts = _DURATION.findall(body)
    if not parts or "".join(n + u for n, u in parts) != body:
        raise BadRequest(f"keep_alive: '{echo(value)}' is not a duration; send seconds or e.g. '5m', '1h', '30s'",
                         param="keep_alive")
    return sign * sum(float(n) * _UNIT_SECONDS[u] for n, u in parts)


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).isoformat().replace("+00:00", "Z")


def _now() -> str:
    return _iso(time.time())


def _ns(seconds: float) -> int:
    return int(seconds * 1e9)


def _durations(stats: GenerationStats, load_seconds: float) -> OllamaDurations:
    total = load_seconds + stats.queued_seconds + stats.prompt_seconds + stats.generation_seconds
    return OllamaDurations(total_duration=_ns(total), load_duration=_ns(load_seconds),
                           prompt_eval_count=stats.prompt_tokens, prompt_eval_duration=_ns(stats.prompt_seconds),
                           eval_count=stats.completion_tokens, eval_duration=_ns(stats.generation_seconds))


def _done_reason(finish_reason: str) -> str:
    return "length" if finish_reason == "length" else "stop"


def _tool_call(call: ResponseToolCall) -> OllamaToolCallOut:
    try:
        arguments = json.loads(call.function.arguments)
    except ValueError:
        arguments = {}
    return OllamaToolCallOut(function=OllamaFunctionCallOut(name=call.function.name,
                                                arguments=arguments if isinstance(arguments, dict) else {}))


def _sampling(req: OllamaGenerationFields) -> dict[str, Any]:
    """The request's ``options`` and ``format`` as chat/completion request fields."""
    fields: dict[str, Any] = {"model": req.model}
    options = req.options
    if options is not None:
        fields.update({k: getattr(options, k) for k in _SAMPLING if getattr(options, k) is not None})
        if options.num_predict is not None and options.num_predict > 0:
            fields["max_tokens"] = options.num_predict
        if options.model_extra:
            log.info("ollama: ignoring options set per model in the config here: %s",
                     ", ".join(echo(k) for k in sorted(options.model_extra)))
    if req.format == "json":
        fields["response_format"] = {"type": "json_object"}
    elif isinstance(req.format, dict):
        fields["response_format"] = {"type": "json_schema", "json_schema": {"name": "format", "schema": req.format}}
    return fields


class _OllamaCompletion(CompletionRequest):
    """A raw ``/api/generate``: Ollama's ``num_predict`` left out means "until done", so the default
    is chat's (cut to what fits), not OpenAI completions' 16."""

    DEFAULT_MAX_TOKENS: ClassVar[int] = CHAT_DEFAULT_MAX_TOKENS


_FIELDS = {"max_tokens": "options.num_predict", "response_format": "format", "stop": "options.stop",
           "temperature": "options.temperature", "top_p": "options.top_p", "top_k": "options.top_k"}


class OllamaServing:
    """Ollama's routes over the other servings."""

    def __init__(self, registry: ModelRegistry[LlamaModel], chat: ChatServing, completion: CompletionServing,
                 embeddings: EmbeddingServing) -> None:
        self.registry = registry
        self.chat = chat
        self.completion = completion
        self.embeddings = embeddings

    # -- keep_alive ----------------------------------------------------------------------------

    def keep_alive(self, model: str, value: KeepAlive) -> None:
        """A request's ``keep_alive``: from now on the model's idle time before it is unloaded."""
        seconds = keep_alive_seconds(value)
        if seconds is not None:
            self.registry.primary(self.registry.lookup(model)).keep_alive_override = -1.0 if seconds < 0 else seconds

    # -- chat ----------------------------------------------------------------------------------

    def to_chat(self, req: OllamaChatRequest) -> ChatCompletionRequest:
        messages: list[dict[str, Any]] = []
        for i, m in enumerate(req.messages):
            if m.images:
                raise BadRequest(f"not supported: images (messages.{i}: the models here read text only)",
                                 param=f"messages.{i}.images")
            message: dict[str, Any] = {"role": m.role, "content": m.content}
            if m.tool_calls:
                message["tool_calls"] = [{"id": f"call_{i}_{k}", "type": "function", "function": {
                    "name": c.function.name, "arguments": json.dumps(c.function.arguments, ensure_ascii=False)}}
                    for k, c in enumerate(m.tool_calls)]
            if m.role == "tool" and m.tool_name:
                message["name"] = m.tool_name
            messages.append(message)
        data = {**_sampling(req), "messages": messages}
        if req.tools:
            data["tools"] = [t.model_dump(exclude_none=True) for t in req.tools]
        return chat_request(data, _FIELDS)

    async def admit_chat(self, req: OllamaChatRequest) -> tuple[ChatCompletionRequest, Admitted]:
        if not req.messages:
            raise BadRequest("messages: send at least one message (an empty chat only loads a model in Ollama; "
                             "use /api/generate with an empty prompt for that)", param="messages")
        chat = self.to_chat(req)
        admitted = await self.chat.admit_chat(chat)
        self.keep_alive(admitted.model, req.keep_alive)
        return chat, admitted

    async def chat_answer(self, chat: ChatCompletionRequest, admitted: Admitted,
                          request: Request) -> OllamaChatResponse:
        answer = (await self.chat.answers(admitted, chat, request))[0]
        calls = [_tool_call(c) for c in answer.tool_calls] or None
        return OllamaChatResponse(model=admitted.model, created_at=_now(),
                            message=OllamaAssistantMessage(content=answer.content or "", tool_calls=calls),
                            done_reason=_done_reason(answer.finish_reason),
                            **_durations(answer.stats, admitted.lease.load_wait_seconds).model_dump())

    def chat_stream(self, chat: ChatCompletionRequest, admitted: Admitted) -> GenerationStream:
        async def events() -> AsyncIterator[OllamaChatChunk | OllamaChatResponse]:
            async for event in self.chat.answer_events(admitted, chat):
                if isinstance(event, TextDelta):
                    if event.text:
                        yield OllamaChatChunk(model=admitted.model, created_at=_now(),
                                        message=OllamaAssistantMessage(content=event.text))
                elif isinstance(event, ToolCallDone):
                    yield OllamaChatChunk(model=admitted.model, created_at=_now(), message=OllamaAssistantMessage(
                        content="", tool_calls=[_tool_call(event.call)]))
                else:
                    yield OllamaChatResponse(model=admitted.model, created_at=_now(),
                                             message=OllamaAssistantMessage(content=""),
                                             done_reason=_done_reason(event.finish_reason),
                                             **_durations(event.stats, admitted.lease.load_wait_seconds).model_dump())

        return GenerationStream(admitted, events(), OLLAMA_NDJSON)

    # -- generate ------------------------------------------------------------------------------

    async def load_or_unload(self, req: OllamaGenerateRequest) -> OllamaGenerateResponse:
        """An empty prompt: load the model (Ollama's preload), or with ``keep_alive`` 0 unload it."""
        seconds = keep_alive_seconds(req.keep_alive)
        name = self.registry.lookup(req.model).name
        if seconds == 0:
            owner = self.registry.primary(self.registry.lookup(name))
            if not self.registry.unload(owner.name):
                owner.keep_alive_override = 0.0  # held by a running request: unloaded as soon as it is free
            return OllamaGenerateResponse(model=name, created_at=_now(), response="", done_reason="unload")
        started = time.monotonic()
        async with self.registry.using(name):
            pass
        self.keep_alive(name, req.keep_alive)
        return OllamaGenerateResponse(model=name, created_at=_now(), response="", done_reason="load",
                                load_duration=_ns(time.monotonic() - started))

    def _raw(self, req: OllamaGenerateRequest) -> bool:
        """Whether the prompt goes to the model as it is: asked for, or the model has no chat template
        of its own (a base model, as Ollama's template for it would be the bare prompt)."""
        if req.raw:
            return True
        model = self.registry.primary(self.registry.lookup(req.model))
        handle = model.handle if model.state is ModelState.READY else None
        return handle is not None and handle.chat_fallback

    async def admit_generate(self, req: OllamaGenerateRequest) -> tuple[ChatCompletionRequest | None, Admitted]:
        """The request admitted as a completion (raw) or as a one-turn chat; the chat request, if a chat."""
        for name in ("suffix", "images", "context"):
            if getattr(req, name):
                raise BadRequest(f"not supported: {name} on /api/generate (fill-in-the-middle, images and the "
                                 "deprecated context are not served); remove it", param=name)
        chat: ChatCompletionRequest | None = None
        if self._raw(req):
            completion = translated(_OllamaCompletion, {**_sampling(req), "prompt": req.prompt}, _FIELDS)
            admitted = await self.completion.admit_completion(completion)
        else:
            turns = ([{"role": "system", "content": req.system}] if req.system else []) + [
                {"role": "user", "content": req.prompt}]
            chat = chat_request({**_sampling(req), "messages": turns}, _FIELDS)
            admitted = await self.chat.admit_chat(chat)
        self.keep_alive(admitted.model, req.keep_alive)
        return chat, admitted

    async def generate_answer(self, chat: ChatCompletionRequest | None, admitted: Admitted,
                              request: Request) -> OllamaGenerateResponse:
        if chat is not None:
            answer = (await self.chat.answers(admitted, chat, request))[0]
            text, stats, reason = answer.content or "", answer.stats, answer.finish_reason
        else:
            text, stats = await self.completion.complete(admitted, request)
            reason = stats.finish_reason
        durations = _durations(stats, admitted.lease.load_wait_seconds)
        return OllamaGenerateResponse(model=admitted.model, created_at=_now(), response=text,
                                done_reason=_done_reason(reason), **durations.model_dump())

    def generate_stream(self, chat: ChatCompletionRequest | None, admitted: Admitted) -> GenerationStream:
        def end(stats: GenerationStats, reason: str) -> OllamaGenerateResponse:
            return OllamaGenerateResponse(model=admitted.model, created_at=_now(), response="",
                                    done_reason=_done_reason(reason),
                                    **_durations(stats, admitted.lease.load_wait_seconds).model_dump())

        async def events() -> AsyncIterator[OllamaGenerateChunk | OllamaGenerateResponse]:
            if chat is not None:
                async for event in self.chat.answer_events(admitted, chat):
                    if isinstance(event, TextDelta) and event.text:
                        yield OllamaGenerateChunk(model=admitted.model, created_at=_now(), response=event.text)
                    elif isinstance(event, ChoiceEnd):
                        yield end(event.stats, event.finish_reason)
                return
            async for item in self.completion.events(admitted):
                if isinstance(item, GenerationStats):
                    yield end(item, item.finish_reason)
                elif item:
                    yield OllamaGenerateChunk(model=admitted.model, created_at=_now(), response=item)

        return GenerationStream(admitted, events(), OLLAMA_NDJSON)

    # -- embeddings ----------------------------------------------------------------------------

    async def _embed(self, model: str, inputs: list[str], dimensions: int | None,
                     keep_alive: KeepAlive) -> EmbeddingResult:
        keep_alive_seconds(keep_alive)  # a bad value: 400 before the work
        result = await self.embeddings.embed(model, inputs, dimensions)
        self.keep_alive(result.model, keep_alive)
        return result

    async def embed(self, req: OllamaEmbedRequest) -> OllamaEmbedResponse:
        inputs = [req.input] if isinstance(req.input, str) else list(req.input)
        result = await self._embed(req.model, inputs, req.dimensions, req.keep_alive)
        stats = result.stats
        return OllamaEmbedResponse(model=result.model, embeddings=[v.tolist() for v in result.vectors],
                             total_duration=_ns(result.load_seconds + stats.queued_seconds + stats.compute_seconds),
                             load_duration=_ns(result.load_seconds), prompt_eval_count=stats.prompt_tokens)

    async def embeddings_legacy(self, req: OllamaEmbeddingsRequest) -> OllamaEmbeddingsResponse:
        result = await self._embed(req.model, [req.prompt], None, req.keep_alive)
        return OllamaEmbeddingsResponse(embedding=result.vectors[0].tolist())

    # -- models --------------------------------------------------------------------------------

    def _listed(self, model: ManagedModel[LlamaModel]) -> OllamaListedModel:
        owner = self.registry.primary(model)
        handle = owner.handle if owner.state is ModelState.READY else None
        path = handle.path if handle is not None else None
        size, modified = 0, owner.transitions.get(ModelState.PENDING.value, time.time())
        if path is not None:
            stat = path.stat()
            size, modified = stat.st_size, stat.st_mtime
        details = OllamaModelDetails()
        if handle is not None:
            arch = handle.native.metadata("general.architecture") or ""
            words = handle.native.description().split(" ", 2)  # "qwen2 1B Q4_K - Medium": the type is last
            n = handle.native.n_params
            details = OllamaModelDetails(family=arch, families=[arch] if arch else None,
                                   parameter_size=f"{n / 1e9:.1f}B" if n >= 1e9 else f"{n / 1e6:.0f}M",
                                   quantization_level=words[2] if len(words) > 2 else "")
        # An identity of the file (path, size, time), not its sha256: hashing GBs per listing would cost seconds.
        digest = hashlib.sha256(f"{path}:{size}:{modified}".encode()).hexdigest()
        return OllamaListedModel(name=model.name, model=model.name, modified_at=_iso(modified), size=size,
                                 digest=digest, details=details)

    def tags(self) -> OllamaTagsResponse:
        return OllamaTagsResponse(models=[self._listed(m) for m in self.registry.models.values()])

    def ps(self) -> OllamaPsResponse:
        running = []
        now_wall, now = time.time(), time.monotonic()
        for model in self.registry.models.values():
            owner = self.registry.primary(model)
            if owner.state is not ModelState.READY or owner.handle is None:
                continue
            keep = owner.keep_alive
            idle_from = now if owner.refs else owner.last_used
            expires = FOREVER if keep < 0 else _iso(now_wall + (idle_from - now) + keep)
            running.append(OllamaRunningModel(**self._listed(model).model_dump(), expires_at=expires,
                                        context_length=owner.handle.n_ctx))
        return OllamaPsResponse(models=running)

    def show(self, name: str) -> OllamaShowResponse:
        model = self.registry.lookup(name)
        listed = self._listed(model)
        owner = self.registry.primary(model)
        handle = owner.handle if owner.state is ModelState.READY else None
        capabilities = ["completion"]
        template = ""
        info: dict[str, Any] = {}
        if handle is not None:
            if handle.engine.kind is JobKind.EMBED:
                capabilities = ["embedding"]
            else:
                if handle.chat is not None and not handle.chat_fallback:
                    template = handle.chat.source
                    if handle.chat.renders_tools():
                        capabilities.append("tools")
            arch = listed.details.family
            info = {"general.architecture": arch, "general.parameter_count": handle.native.n_params,
                    f"{arch}.context_length": handle.n_ctx}
        parameters = "\n".join(f"{k} {v}" for k, v in model.spec.options.items())
        return OllamaShowResponse(modelfile=f"# served by the GGUF model server: model '{model.name}' "
                                      f"(backend {model.spec.backend})\n",
                            parameters=parameters, template=template, details=listed.details, model_info=info,
                            capabilities=capabilities, modified_at=listed.modified_at)
