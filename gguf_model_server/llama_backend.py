"""The llama.cpp backend: load a GGUF file into a serving engine; tokenize prompts and chats for it."""

from __future__ import annotations

import ctypes
import json
import logging
import os
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from gguf_model_server.chat_template import CHATML, ChatPart, ChatTemplate, Tools
from gguf_model_server.embedding_jobs import POOLING_NAMES, POOLING_TYPES
from gguf_model_server.engine import Engine, GenerationRequest, JobKind
from gguf_model_server.llama_native import (
    KV_CACHE_TYPES,
    ContextShape,
    GpuPlacement,
    NativeModel,
    SpecialTokens,
    gpu_offload_supported,
    llama,
    longest_piece_bytes,
    special_tokens,
)
from gguf_model_server.model_files import resolve_model_path
from gguf_model_server.tool_calls import FORMATS, ToolCallFormat, format_for_template
from serving_core.compute import ComputeSlots
from serving_core.errors import BadRequest, PermanentLoadError
from serving_core.registry import Loader
from serving_core.specs import ModelSpec, parse_options

log = logging.getLogger("gguf_model_server.llama")

LLAMA_BACKEND_NAMES = ("llama_cpp", "llama-cpp", "gguf")
_TRUNCATE_HINT = ", or let the server drop the oldest turns (options.context_overflow: truncate_middle)"
_CHEAP_BYTES_PER_TOKEN = 8

KvCacheType = Literal[KV_CACHE_TYPES]  # type: ignore[valid-type]  # the tuple's names, for the schema


class LlamaOptions(BaseModel):
    """Per-model options accepted under ``options:`` in the config."""

    model_config = ConfigDict(extra="forbid")

    n_ctx: int = Field(default=2048, ge=16, le=262_144, description="context window of each sequence, in tokens")
    parallel: int = Field(default=4, ge=1, le=64,
                          description="sequences decoded together (continuous batching); 1 = one at a time")
    n_threads: int | None = Field(default=None, ge=1, le=512, description="default: all cores")
    n_batch: int = Field(default=512, ge=1, le=65_536, description="most tokens per decode step")
    use_mmap: bool = True
    use_mlock: bool = False
    repack: bool = Field(default=True,
                         description="re-lay the weights out for the CPU's SIMD kernels while loading (llama.cpp's "
                                     "extra buffer types): a copy that costs load time and memory, for decode speed")
    chat_template: str | None = Field(default=None,
                                      description="Jinja chat template; default: the one in the GGUF file, "
                                                  "else ChatML")
    context_overflow: Literal["error", "truncate_middle"] = Field(
        default="error",
        description="a chat longer than the context: 'error' (400), or 'truncate_middle': keep the system "
                    "message and the latest turns, dropping the oldest others until it fits (with room to answer)")
    cache_ram_mib: int = Field(
        default=2048, ge=0, le=1_048_576,
        description="host memory for the prompt cache (MiB): the KV of a sequence about to be overwritten is kept "
                    "here and restored when its prompt returns (llama-server's --cache-ram); least recently used "
                    "out first; 0 = off")
    cache_prompt: bool = Field(default=True,
                               description="reuse a sequence's KV for a shared prompt prefix; false = every "
                                           "request is evaluated alone from scratch (exactly reproducible)")
    embeddings: bool = Field(
        default=False,
        description="serve this model for embeddings (/v1/embeddings, /api/embed) and nothing else: its context "
                    "computes pooled vectors, not logits. For a chat model too, list it a second time under "
                    "another name with this on")
    pooling: Literal["model", "mean", "cls", "last"] = Field(
        default="model", description="with embeddings: how a sequence's token vectors become one; 'model': the "
                                     "GGUF's own (a model that names none must be given one)")
    n_gpu_layers: int = Field(
        default=0, ge=-1, le=100_000,
        description="layers offloaded to the GPU (llama-server's -ngl): 0 = none, -1 = all; needs a GPU build of "
                    "llama.cpp (docs/OPERATIONS.md, 'GPUs'); on a CPU-only build it has no effect (logged)")
    main_gpu: int = Field(default=0, ge=0, le=255,
                          description="the GPU for a model on one GPU, and for scratch buffers")
    tensor_split: list[float] | None = Field(
        default=None, min_length=1, max_length=16,
        description="share of the model per GPU, in device order (e.g. [3, 1]); default: llama.cpp's split")
    flash_attn: Literal["auto", "on", "off"] = Field(
        default="auto", description="flash attention: 'auto' lets llama.cpp decide per backend")
    cache_type_k: KvCacheType = Field(default="f16", description="KV cache element type of keys (q8_0 halves it)")
    cache_type_v: KvCacheType = Field(
        default="f16", description="KV cache element type of values; a quantized type needs flash attention")

    @field_validator("tensor_split")
    @classmethod
    def _shares(cls, value: list[float] | None) -> list[float] | None:
        if value is not None and (any(v < 0 for v in value) or sum(value) <= 0):
            raise ValueError("tensor_split shares must be >= 0 with a positive sum, e.g. [3, 1]")
        return value

    @model_validator(mode="after")
    def _quantized_values_need_flash_attention(self) -> LlamaOptions:
        if self.cache_type_v not in ("f32", "f16", "bf16") and self.flash_attn == "off":
            raise ValueError(f"cache_type_v {self.cache_type_v} needs flash attention: set flash_attn to 'auto' or "
                             "'on', or cache_type_v to f16")
        return self

    def gpu(self) -> GpuPlacement:
        return GpuPlacement(n_gpu_layers=self.n_gpu_layers, main_gpu=self.main_gpu,
                            tensor_split=tuple(self.tensor_split or ()))


class LlamaModel:
    """A loaded GGUF model: its engine, tokenizer and chat template."""

    def __init__(self, name: str, path: Path, native: NativeModel, engine: Engine, options: LlamaOptions,
                 reopen: tuple[Callable[[], NativeModel], Callable[[NativeModel], Engine]] | None = None) -> None:
        self.name = name
        self._reopen = reopen  # how to open the file again, and build an engine on it (waking up)
        self.path = path
        self.native = native
        self.engine = engine
        self.options = options
        own_template = options.chat_template or native.chat_template()
        # No template of its own (a base model such as Gemma 3 270M): chat falls back to ChatML,
        # which the model never learnt — it may well write the markup itself, so it ends the answer.
        self.chat_fallback = own_template is None
        self._fallback_noted = False
        template = own_template or CHATML
        self.chat: ChatTemplate | None = None
        self.chat_error: str | None = None
        try:
            self.chat = ChatTemplate(template, bos_token=native.token_text(native.bos) if native.bos >= 0 else "",
                                     eos_token=native.token_text(native.eos) if native.eos >= 0 else "")
        except Exception as exc:  # noqa: BLE001 - a broken template costs chat, not completion
            self.chat_error = f"{type(exc).__name__}: {exc}"
            log.warning("model '%s': its chat template does not compile (%s); chat is unavailable", name,
                        self.chat_error)
        self._special: SpecialTokens | None = None
        self._control_index_cache: tuple[re.Pattern[str] | None, dict[str, list[int]]] | None = None
        self._template_splits: dict[str, list[str | int]] = {}
        self._longest_piece: int | None = None
        self._vocab_lock = threading.Lock()

    @property
    def n_ctx(self) -> int:
        """Context window of one sequence, in tokens."""
        return self.engine.n_ctx

    def special_tokens(self) -> SpecialTokens:
        """The vocabulary's special tokens, scanned once: by the engine thread as soon as the model
        is loaded (mostly beside other models' loads), or by the first request if that comes first."""
        if self._special is None:
            with self._vocab_lock:
                if self._special is None:
                    self._special = special_tokens(self.native)
        return self._special

    def banned_tokens(self) -> list[int]:
        """The tokens never to sample."""
        return self.special_tokens().banned

    def longest_piece(self) -> int:
        if self._longest_piece is None:
            with self._vocab_lock:
                if self._longest_piece is None:
                    self._longest_piece = longest_piece_bytes(self.native)
        return self._longest_piece

    def _check_bytes(self, text: str, what: str) -> None:
        # Bound the work before tokenizing: a prompt of B bytes has at least B / (longest token)
        # tokens, so a multi-megabyte prompt is refused without spending seconds and memory on it.
        # Up to 8 bytes per context token it is cheaper to just tokenize (and stop counting there).
        n_bytes = len(text.encode("utf-8"))
        if n_bytes > self.n_ctx * _CHEAP_BYTES_PER_TOKEN and n_bytes > self.n_ctx * self.longest_piece():
            raise BadRequest(f"the {what} is {n_bytes} bytes: more than the model's context window of "
                             f"{self.n_ctx} tokens (options.n_ctx) can hold; shorten it"
                             f"{_TRUNCATE_HINT if what == 'chat' else ''}",
                             param="prompt" if what == "prompt" else "messages")

    def _tokenize(self, text: str, *, add_special: bool, parse_special: bool, what: str) -> list[int]:
        self._check_bytes(text, what)
        return self.native.tokenize(text, add_special=add_special, parse_special=parse_special, limit=self.n_ctx)

    def tokenize_prompt(self, text: str) -> list[int]:
        """A raw prompt's tokens. Text like ``<bos>`` stays text: a user cannot inject control tokens."""
        return self._tokenize(text, add_special=True, parse_special=False, what="prompt")

    def tokenize_inputs(self, inputs: Sequence[str | list[int]]) -> list[list[int]]:
        """Embedding inputs as token arrays (text tokenized as a prompt; token ids checked against the
        vocabulary); 400 naming the input that cannot be embedded."""
        out: list[list[int]] = []
        for i, item in enumerate(inputs):
            if isinstance(item, str):
                try:
                    out.append(self.tokenize_prompt(item))
                except BadRequest:
                    raise BadRequest(f"input {i} is longer than model '{self.name}' embeds at once ({self.n_ctx} "
                                     "tokens, options.n_ctx); shorten it or split it", param="input") from None
            else:
                bad = next((t for t in item if not 0 <= t < self.native.n_vocab), None)
                if bad is not None:
                    raise BadRequest(f"input {i}: token id {bad} is outside the model's vocabulary "
                                     f"(0-{self.native.n_vocab - 1})", param="input")
                out.append(list(item))
        self.engine.check_embeddable(out)
        return out

    def chat_stops(self) -> tuple[str, ...]:
        """Stop strings every chat on this model gets: the fallback template's turn markers (a
        model that does not know them writes them as text; they must never reach the answer)."""
        if not self.chat_fallback:
            return ()
        if not self._fallback_noted:
            self._fallback_noted = True
            log.warning("model '%s' has no chat template: chat uses the ChatML fallback, which it was not trained "
                        "on (answers may be poor); prefer a chat model, or set options.chat_template", self.name)
        return ("<|im_end|>", "<|im_start|>")

    def tool_format(self) -> ToolCallFormat:
        """The tool-call syntax this model's chat template writes; 400 when it has none served here."""
        if self.chat is None or self.chat_fallback or not self.chat.renders_tools():
            why = "has no chat template of its own" if self.chat is None or self.chat_fallback else \
                "has a chat template that does not render tools"
            raise BadRequest(f"model '{self.name}' {why}, so it cannot call tools; send the request to a model "
                             "whose template renders tools (a Qwen 2.5 instruct model does), or remove 'tools'",
                             param="tools")
        family = format_for_template(self.chat.source)
        if family is None:
            raise BadRequest(f"model '{self.name}': its chat template renders tools, but it writes tool calls in a "
                             f"syntax this server does not parse yet (served: {', '.join(f.name for f in FORMATS)})",
                             param="tools")
        return family

    def tokenize_chat_within(self, messages: list[dict[str, Any]], reserve: int, tools: Tools = None) -> list[int]:
        """``tokenize_chat``, and with ``context_overflow: truncate_middle`` a chat that leaves less than
        ``reserve`` tokens to answer in loses its oldest messages (never the system message nor the
        last one), as few as needed: a binary search, so a long chat costs a few renders, not one
        per message."""
        if self.options.context_overflow == "error":
            return self.tokenize_chat(messages, tools)
        keep = 1 if messages and messages[0].get("role") == "system" else 0
        droppable = max(0, len(messages) - keep - 1)

        def attempt(dropped: int) -> list[int] | None:
            try:
                tokens = self.tokenize_chat(messages[:keep] + messages[keep + dropped:], tools)
            except BadRequest as exc:
                if "context window" not in exc.message:
                    raise
                return None
            return tokens if len(tokens) + reserve <= self.n_ctx else None

        whole = attempt(0)
        if whole is not None:
            return whole
        low, high, best = 1, droppable, None
        while low <= high:
            middle = (low + high) // 2
            tokens = attempt(middle)
            if tokens is None:
                low = middle + 1
            else:
                best, high = (middle, tokens), middle - 1
        if best is None:
            return self.tokenize_chat(messages, tools)  # cannot fit even so: the usual 400 says why
        log.info("model '%s': chat of %d messages over the context of %d tokens: dropped the %d oldest "
                 "(context_overflow: truncate_middle)", self.name, len(messages), self.n_ctx, best[0])
        return best[1]

    def tokenize_chat(self, messages: list[dict[str, Any]], tools: Tools = None) -> list[int]:
        """The chat rendered with the model's template: the template's markup becomes its control
        tokens, the messages' text stays text (``<|im_start|>`` typed into a message cannot forge a
        turn). For a chat without such text in its messages, the tokens are exactly those of the
        whole prompt tokenized with control tokens, as before."""
        if self.chat is None:
            raise BadRequest(f"model '{self.name}' has no usable chat template ({self.chat_error}); use "
                             "/v1/completions or set options.chat_template", param="model")
        # Tools and earlier calls are written by the template as its own text, where control-token
        # text becomes control tokens: it must not be there, or a tool could forge a turn.
        self._refuse_markup(tools, "tools")
        for i, m in enumerate(messages):
            self._refuse_markup(m.get("tool_calls"), f"messages.{i}.tool_calls")
        rendered = self.chat.render(messages, tools)
        self._check_bytes(rendered.prompt, "chat")
        add_special = not rendered.starts_with_bos
        parts = self.chat.parts(messages, rendered.prompt, tools)
        if parts is None:
            # The template rewrites message text beyond trimming: the prompt cannot be cut, which is
            # safe only while no message holds control-token text.
            for i, m in enumerate(messages):
                if any(isinstance(p, int) for p in self._split_control(str(m.get("content") or ""), keep=False)):
                    raise BadRequest(f"messages.{i}.content holds control-token markup, and this model's chat "
                                     "template rewrites message text so that it cannot be kept apart; remove "
                                     "the markup", param=f"messages.{i}.content")
            return self._tokenize(rendered.prompt, add_special=add_special, parse_special=True, what="chat")
        return self._tokenize_parts(parts, add_special=add_special)

    def _refuse_markup(self, value: Any, param: str) -> None:
        if value and any(isinstance(p, int) for p in self._split_control(json.dumps(value, ensure_ascii=False),
                                                                         keep=False)):
            raise BadRequest(f"{param} holds the model's control-token markup (such as a turn marker); remove it",
                             param=param)

    def _tokenize_parts(self, parts: tuple[ChatPart, ...], *, add_special: bool) -> list[int]:
        # llama.cpp, tokenizing with parse_special, cuts the text at control-token text and
        # tokenizes each stretch between them as plain text. The same here, except that only the
        # template's text is cut: a stretch runs across message text, whatever that holds. Merging
        # the stretches keeps the tokens of an ordinary chat identical to the old whole-prompt ones
        # (a newline of the template and one starting a message still merge into one token).
        tokens: list[int] = [self.native.bos] if add_special and self.native.add_bos else []
        stretch: list[str] = []

        def flush() -> None:
            if stretch:
                left = self.n_ctx - len(tokens)
                tokens.extend(self._count_limited("".join(stretch), left))
                stretch.clear()

        for part in parts:
            if part.from_message:
                stretch.append(part.text)
                continue
            for piece in self._split_control(part.text):
                if isinstance(piece, str):
                    stretch.append(piece)
                else:
                    flush()
                    tokens.append(piece)
        flush()
        if add_special and self.native.add_eos:
            tokens.append(self.native.eos)
        if len(tokens) > self.n_ctx:
            raise BadRequest(f"the chat is {len(tokens)} tokens but at most {self.n_ctx} fit the model's context "
                             f"window (options.n_ctx); shorten the messages{_TRUNCATE_HINT}", param="messages")
        return tokens

    def _count_limited(self, text: str, left: int) -> list[int]:
        try:
            return self.native.tokenize(text, add_special=False, parse_special=False, limit=max(left, 0))
        except BadRequest:
            raise BadRequest(f"the chat is more than {self.n_ctx} tokens, the model's context window "
                             f"(options.n_ctx); shorten the messages{_TRUNCATE_HINT}", param="messages") from None

    def _split_control(self, text: str, *, keep: bool = True) -> list[str | int]:
        """``text`` cut at control-token text: plain stretches and control token ids, in order, the
        longest token first where several start at one place (as llama.cpp matches them). A template
        writes few distinct texts, so their splits are kept (``keep``; at most 256 of them)."""
        cached = self._template_splits.get(text)
        if cached is not None:
            return cached
        control = self.special_tokens().control
        starts, lengths = self._control_index()
        out: list[str | int] = []
        pos = 0
        i = 0
        while starts is not None and (m := starts.search(text, i)) is not None:
            i = m.start()
            for n in lengths[text[i]]:
                token = control.get(text[i:i + n])
                if token is not None:
                    if i > pos:
                        out.append(text[pos:i])
                    out.append(token)
                    pos = i = i + n
                    break
            else:
                i += 1
        if pos < len(text):
            out.append(text[pos:])
        if keep and len(text) <= 4096:
            if len(self._template_splits) >= 256:
                self._template_splits.clear()
            self._template_splits[text] = out
        return out

    def _control_index(self) -> tuple[re.Pattern[str] | None, dict[str, list[int]]]:
        """A pattern finding the characters control-token text starts with, and for each such
        character the lengths of those texts, longest first."""
        if self._control_index_cache is None:
            lengths: dict[str, set[int]] = {}
            for t in self.special_tokens().control:
                lengths.setdefault(t[0], set()).add(len(t))
            starts = re.compile("[" + "".join(re.escape(c) for c in lengths) + "]") if lengths else None
            self._control_index_cache = (starts, {c: sorted(n, reverse=True) for c, n in lengths.items()})
        return self._control_index_cache

    def busy(self) -> tuple[int, int]:
        """(sequences generating, requests waiting for a sequence), for /metrics."""
        return self.engine.active, self.engine.waiting

    def placement(self) -> dict[str, object]:
        """Where the model's layers live, for /health: llama.cpp offloads ``n_gpu_layers`` of its
        ``n_layer`` + 1 (the output layer counts) when the build has a GPU backend."""
        layers = self.native.n_layer + 1
        requested = self.options.n_gpu_layers
        gpu_build = gpu_offload_supported()
        on_gpu = 0 if not gpu_build else layers if requested < 0 else min(requested, layers)
        return {"layers": layers, "gpu_layers": on_gpu, "gpu_build": gpu_build,
                "kv_cache": f"{self.options.cache_type_k}/{self.options.cache_type_v}"}

    def kv_cache_cells(self) -> tuple[int, int]:
        """(KV cells held by sequences serving requests, all cells), for /metrics."""
        return self.engine.kv_cache_cells()

    def interrupt(self) -> None:
        """Shutdown: running and waiting generations end with 503 at the next step."""
        self.engine.interrupt()

    def warmup(self) -> None:
        """One token, so the first real request does not pay for first-decode setup."""
        import asyncio

        async def one() -> None:
            if self.engine.kind is JobKind.EMBED:
                await self.engine.enqueue_embedding([self.tokenize_prompt("Hello")]).result()
                return
            await self.engine.submit(GenerationRequest(prompt=self.tokenize_prompt("Hello"), max_tokens=1)).text()

        try:
            asyncio.run(one())
        except BaseException:
            self.close()  # the registry retries with a fresh load: free this one
            raise

    def close(self) -> None:
        self.engine.close()
        self.native.close()  # already freed by the engine, unless asleep

    def sleep(self, level: int) -> None:
        """Free the engine (its context: the KV cache, the compute buffers, the RAM prompt cache)
        and at level 2 the weights too; ``wake`` builds them again. Only on an idle model (the
        registry sees to it)."""
        self.engine.close(free_model=False)
        if level >= 2:
            self.native.close()  # the file's pages stay in the page cache: waking maps them again

    def wake(self) -> LlamaModel:
        """A model put to sleep made whole again: the file mapped again if its weights were freed,
        a new context and engine on them."""
        if self._reopen is None:
            raise RuntimeError(f"model '{self.name}' cannot wake: it was not built by this loader")
        open_native, new_engine = self._reopen
        with llama_errors() as errors:
            try:
                if not self.native.ptr:
                    self.native = open_native()
                self.engine = new_engine(self.native)
            except RuntimeError as exc:
                detail = "; ".join(errors)
                raise RuntimeError(f"{exc} ({detail})" if detail else str(exc)) from None
        self.engine.start()
        return self


_GGML_LOG_ERROR = 4  # ggml.h: NONE 0, DEBUG 1, INFO 2, WARN 3, ERROR 4, CONT 5
_GGML_LOG_CONT = 5


class _LlamaErrors(threading.local):
    """llama.cpp's error messages, collected per loading thread, so a failed load can say why."""

    def __init__(self) -> None:
        self.lines: list[str] | None = None
        self.last_level = 0


_errors = _LlamaErrors()


@contextmanager
def llama_errors() -> Iterator[list[str]]:
    """The error lines llama.cpp logs from this thread meanwhile (a parser's reasons, say)."""
    lines: list[str] = []
    previous, _errors.lines = _errors.lines, lines
    try:
        yield lines
    finally:
        _errors.lines = previous
_log_lock = threading.Lock()
_log_callback: Any = None  # the ctypes callback must stay referenced while llama.cpp may call it


def _on_llama_log(level: int, text: bytes, _user_data: Any) -> None:
    if level == _GGML_LOG_CONT:
        level = _errors.last_level
    _errors.last_level = level
    if level == _GGML_LOG_ERROR:
        message = text.decode("utf-8", "replace").strip()
        if message:
            log.error("llama.cpp: %s", message)
            if _errors.lines is not None:
                _errors.lines.append(message)


def import_llama() -> Any:
    """Import llama_cpp (lazily: it is a large part of cold start), routing llama.cpp's errors to our
    log (and into the failing model's reason) instead of stderr, where they cannot be tied to a model."""
    global _log_callback
    lib = llama()
    with _log_lock:
        if _log_callback is None:
            _log_callback = lib.llama_log_callback(_on_llama_log)
            lib.llama_log_set(_log_callback, ctypes.c_void_p(0))
    return lib


def make_loader(model_dir: str | None, compute: ComputeSlots, max_waiting: int) -> Loader[LlamaModel]:
    """A registry loader that builds LlamaModel handles (model + engine) from specs."""

    def load(spec: ModelSpec) -> LlamaModel:
        if spec.backend not in LLAMA_BACKEND_NAMES:
            raise PermanentLoadError(f"unknown backend '{spec.backend}' (the GGUF server serves 'llama_cpp')")
        opts = parse_options(LlamaOptions, spec)
        path = resolve_model_path(spec, model_dir)
        import_llama()
        with llama_errors() as errors:
            try:
                if opts.n_gpu_layers and not gpu_offload_supported():
                    log.warning("model '%s': n_gpu_layers=%d has no effect: this llama.cpp build has no GPU backend "
                                "(build one: docs/OPERATIONS.md, 'GPUs'); every layer runs on the CPU",
                                spec.name, opts.n_gpu_layers)
                shape = ContextShape(n_ctx_seq=opts.n_ctx, n_seq=opts.parallel, n_batch=opts.n_batch,
                                     n_threads=opts.n_threads or os.cpu_count() or 1, embeddings=opts.embeddings,
                                     pooling=POOLING_TYPES.get(opts.pooling, -1), flash_attn=opts.flash_attn,
                                     cache_type_k=opts.cache_type_k, cache_type_v=opts.cache_type_v)
                holder: list[LlamaModel] = []

                def open_native() -> NativeModel:
                    return NativeModel(path, use_mmap=opts.use_mmap, use_mlock=opts.use_mlock, repack=opts.repack,
                                       gpu=opts.gpu())

                def new_engine(native: NativeModel) -> Engine:
                    return Engine(spec.name, native, shape, compute, max_waiting,
                                  banned=lambda: holder[0].banned_tokens(), cache_ram_bytes=opts.cache_ram_mib << 20)

                native = open_native()
                try:
                    engine = new_engine(native)
                except Exception:
                    native.close()
                    raise
                model = LlamaModel(spec.name, path, native, engine, opts, reopen=(open_native, new_engine))
                holder.append(model)
                if opts.embeddings:
                    pooling = POOLING_NAMES.get(engine.ctx.pooling)
                    if pooling is None:
                        engine.close()
                        raise PermanentLoadError(f"model '{spec.name}': options.embeddings is on, but its GGUF names "
                                                 "no pooling (mean, cls or last); set options.pooling")
                    log.info("model '%s': embeddings on (%s pooling, %d dimensions): served on /v1/embeddings and "
                             "/api/embed only, not for generation", spec.name, pooling, engine.ctx.n_embd)
                engine.start()
            except RuntimeError as exc:
                detail = "; ".join(errors)
                raise RuntimeError(f"{exc} ({detail})" if detail else str(exc)) from None
        return model

    return load
