"""Typed wrappers over llama-cpp-python's low-level (ctypes) API: model, context, batch, samplers.

Only what the engine needs, each wrapper owning one llama.cpp object and freeing it once. The
high-level ``llama_cpp.Llama`` is not used: its completion path is single-sequence and costs
~15 % of single-stream speed in Python-side bookkeeping.
"""

from __future__ import annotations

import ctypes
import re
import threading
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gguf_model_server.generation_params import GrammarTrigger, SamplingConfig
from serving_core import load_progress
from serving_core.errors import BadRequest

_init_lock = threading.Lock()
_backend_ready = False

# llama_vocab_get_attr bits (llama.h, enum llama_token_attr).
_ATTR_UNKNOWN = 1 << 0
_ATTR_UNUSED = 1 << 1
_ATTR_CONTROL = 1 << 3
_ATTR_USER_DEFINED = 1 << 4


def llama() -> Any:
    """The llama_cpp module, with llama.cpp's backend initialised once per process."""
    global _backend_ready
    import llama_cpp

    if not _backend_ready:
        with _init_lock:
            if not _backend_ready:
                llama_cpp.llama_backend_init()
                _backend_ready = True
    return llama_cpp


# KV-cache element types a context may store (llama.cpp's --cache-type-k/-v choices).
KV_CACHE_TYPES = ("f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "iq4_nl", "q5_0", "q5_1")
FLASH_ATTN = {"auto": "LLAMA_FLASH_ATTN_TYPE_AUTO", "on": "LLAMA_FLASH_ATTN_TYPE_ENABLED",
              "off": "LLAMA_FLASH_ATTN_TYPE_DISABLED"}


@dataclass(frozen=True)
class GpuPlacement:
    """Where a model's layers go: ``n_gpu_layers`` of them on GPUs (-1: all), ``main_gpu`` for a
    single-GPU model and the scratch buffers, ``tensor_split`` shares across GPUs (empty: llama.cpp's
    own split). Nothing moves on a build without a GPU backend."""

    n_gpu_layers: int = 0
    main_gpu: int = 0
    tensor_split: tuple[float, ...] = ()


# Files at least this large report their load tensor by tensor (smaller ones load in under a second).
PROGRESS_MIN_BYTES = 512 * 1024 * 1024


def _report_load_progress(fraction: float, _user_data: Any) -> bool:
    load_progress.report(fraction, "loading weights")
    return True


def gpu_offload_supported() -> bool:
    """Whether this llama.cpp build has a GPU backend (CUDA, Metal, Vulkan, …) that layers can go to."""
    return bool(llama().llama_supports_gpu_offload())


class NativeModel:
    """A loaded GGUF model (weights and vocabulary); shared by its contexts, freed by ``close``."""

    def __init__(self, path: Path, *, use_mmap: bool, use_mlock: bool, repack: bool = True,
                 gpu: GpuPlacement = GpuPlacement()) -> None:
        lib = llama()
        params = lib.llama_model_default_params()
        params.n_gpu_layers = gpu.n_gpu_layers
        params.main_gpu = gpu.main_gpu
        # llama.cpp reads one float per possible device, while it loads: kept referenced until then.
        split = (ctypes.c_float * max(1, int(lib.llama_max_devices())))(*gpu.tensor_split)
        if gpu.tensor_split:
            params.tensor_split = split
        # llama.cpp's "extra buffer types": weights re-laid out for the CPU's SIMD kernels at load.
        params.use_extra_bufts = repack
        if use_mmap and use_mlock:
            params.load_mode = lib.LLAMA_LOAD_MODE_MMAP_MLOCK
        elif use_mlock:
            params.load_mode = lib.LLAMA_LOAD_MODE_MLOCK
        elif use_mmap:
            params.load_mode = lib.LLAMA_LOAD_MODE_MMAP
        else:
            params.load_mode = lib.LLAMA_LOAD_MODE_NONE
        # llama.cpp reports how much of the file it has loaded (into the load's progress, /health),
        # once per tensor: each call takes the GIL, which parallel loads and the web stack's imports
        # hold meanwhile (measured, interleaved, 9 rounds: three 0.25 GB files loading at once were
        # ready 3 % later with it). Only a file big enough to take seconds is worth it.
        # The callback must stay referenced while it may be called, and return true to go on.
        load_progress.report(0.0, "loading weights")
        progress = lib.llama_progress_callback(_report_load_progress)
        if path.stat().st_size >= PROGRESS_MIN_BYTES:
            params.progress_callback = progress
        self._lib = lib
        self.ptr = lib.llama_model_load_from_file(str(path).encode(), params)
        del progress
        if not self.ptr:
            raise RuntimeError(f"llama.cpp could not load the model file {path}")
        self.vocab = lib.llama_model_get_vocab(self.ptr)
        self.n_vocab: int = lib.llama_vocab_n_tokens(self.vocab)
        self.n_ctx_train: int = lib.llama_model_n_ctx_train(self.ptr)
        self.add_bos: bool = lib.llama_vocab_get_add_bos(self.vocab)
        self.add_eos: bool = lib.llama_vocab_get_add_eos(self.vocab)
        self.n_layer: int = int(lib.llama_model_n_layer(self.ptr))
        self._piece_buf = ctypes.create_string_buffer(256)

    # -- vocabulary ---------------------------------------------------------------------------

    def tokenize(self, text: str, *, add_special: bool, parse_special: bool, limit: int) -> list[int]:
        """Token ids of ``text``; raises BadRequest when there are more than ``limit`` of them.

        ``parse_special`` turns control-token text (``<bos>``, ``<|im_start|>``) into control
        tokens: right for a rendered chat template, wrong for a user's raw prompt.
        """
        data = text.encode("utf-8")
        n_max = limit + 1
        buf = (self._lib.llama_token * n_max)()
        n = self._lib.llama_tokenize(self.vocab, data, len(data), buf, n_max, add_special, parse_special)
        if n < 0 or n > limit:
            count = -n if n < 0 else n
            raise BadRequest(f"the prompt is {count} tokens but at most {limit} fit the model's context "
                             "window; shorten the prompt", param="prompt")
        return list(buf[:n])

    def piece(self, token: int) -> bytes:
        """The bytes a token stands for; control tokens render as nothing."""
        n = self._lib.llama_token_to_piece(self.vocab, token, self._piece_buf, len(self._piece_buf), 0, False)
        if n < 0:  # longer than the buffer: rare, so retry with the exact size
            buf = ctypes.create_string_buffer(-n)
            n = self._lib.llama_token_to_piece(self.vocab, token, buf, -n, 0, False)
            return buf.raw[:n]
        return self._piece_buf.raw[:n]

    def token_text(self, token: int) -> str:
        """A token as the chat template spells it (special tokens included)."""
        buf = ctypes.create_string_buffer(256)
        n = self._lib.llama_token_to_piece(self.vocab, token, buf, len(buf), 0, True)
        return buf.raw[: max(n, 0)].decode("utf-8", "replace")

    def is_eog(self, token: int) -> bool:
        return bool(self._lib.llama_vocab_is_eog(self.vocab, token))

    @property
    def bos(self) -> int:
        return int(self._lib.llama_vocab_bos(self.vocab))

    @property
    def eos(self) -> int:
        return int(self._lib.llama_vocab_eos(self.vocab))

    def metadata(self, key: str) -> str | None:
        """A GGUF metadata value as text (``general.architecture``, …); None when the file has none."""
        buf = ctypes.create_string_buffer(256)
        n = self._lib.llama_model_meta_val_str(self.ptr, key.encode(), buf, len(buf))
        return buf.value.decode("utf-8", "replace") if n >= 0 else None

    def description(self) -> str:
        """llama.cpp's one-line description: architecture, size and type ("qwen2 1B Q4_K - Medium")."""
        buf = ctypes.create_string_buffer(256)
        self._lib.llama_model_desc(self.ptr, buf, len(buf))
        return buf.value.decode("utf-8", "replace")

    @property
    def n_params(self) -> int:
        return int(self._lib.llama_model_n_params(self.ptr))

    def chat_template(self) -> str | None:
        raw = self._lib.llama_model_chat_template(self.ptr, None)
        return raw.decode("utf-8") if raw else None

    def close(self) -> None:
        if self.ptr:
            self._lib.llama_model_free(self.ptr)
            self.ptr = None


@dataclass(frozen=True)
class ContextShape:
    """How a context is sized: ``n_seq`` sequences of ``n_ctx_seq`` tokens each."""

    n_ctx_seq: int
    n_seq: int
    n_batch: int
    n_threads: int
    embeddings: bool = False  # compute pooled embeddings (not logits): an embedding model's context
    pooling: int = -1  # llama_pooling_type with embeddings; -1: the GGUF's own
    flash_attn: str = "auto"  # a key of FLASH_ATTN
    cache_type_k: str = "f16"  # one of KV_CACHE_TYPES
    cache_type_v: str = "f16"


class SequenceState:
    """One sequence's KV state as llama.cpp wrote it, in a buffer of its own: kept as it is, never
    copied (a conversation's state is megabytes; copies cost the engine thread, so every sequence)."""

    __slots__ = ("buffer", "size")

    def __init__(self, buffer: np.ndarray, size: int) -> None:
        self.buffer = buffer
        self.size = size

    def __len__(self) -> int:
        return self.size


class NativeContext:
    """A llama.cpp context with one KV stream per sequence (``kv_unified`` off), so every sequence
    has its full ``n_ctx_seq`` and sequences never evict each other."""

    def __init__(self, model: NativeModel, shape: ContextShape) -> None:
        lib = model._lib
        params = lib.llama_context_default_params()
        params.n_ctx = shape.n_ctx_seq * shape.n_seq
        params.n_seq_max = shape.n_seq
        params.kv_unified = False
        # A step holds a token of every sequence at least: llama.cpp asserts a batch fits n_batch.
        self.n_batch = max(shape.n_batch, shape.n_seq)
        params.n_batch = self.n_batch
        params.n_ubatch = min(self.n_batch, 512)
        if shape.embeddings:
            # Pooling reads a whole input in one micro-batch (a non-causal encoder attends across it).
            # A multiple of the sequences: else llama.cpp (this pin) aborts the process while reserving
            # the mean-pooled graph of a causal model (GGML_ASSERT ggml_can_mul_mat; measured: 64 tokens
            # with 3, 5, 7 or 12 sequences abort, 60 or 96 with 3, 6 or 12 do not).
            self.n_batch = -(-self.n_batch // shape.n_seq) * shape.n_seq
            params.n_batch = params.n_ubatch = self.n_batch
            params.embeddings = True
            params.pooling_type = shape.pooling
            # Nothing is kept between decodes (each input is forgotten once read), so the KV holds one
            # decode's tokens, shared by its sequences.
            params.n_ctx = self.n_batch
            params.kv_unified = True
        params.n_threads = shape.n_threads
        params.n_threads_batch = shape.n_threads
        params.flash_attn_type = getattr(lib, FLASH_ATTN[shape.flash_attn])
        params.type_k = getattr(lib, f"GGML_TYPE_{shape.cache_type_k.upper()}")
        params.type_v = getattr(lib, f"GGML_TYPE_{shape.cache_type_v.upper()}")
        params.no_perf = True
        self._lib = lib
        self.ptr = lib.llama_init_from_model(model.ptr, params)
        if not self.ptr:
            raise RuntimeError("llama.cpp could not create a context (out of memory for the KV cache?)")
        self.memory = lib.llama_get_memory(self.ptr)  # None for an encoder: it keeps no KV between decodes
        self._abort_callback: Any = None  # must stay referenced while llama.cpp may call it
        self.pooling = int(lib.llama_pooling_type(self.ptr)) if shape.embeddings else 0
        self.n_embd = int(lib.llama_model_n_embd(model.ptr))

    def sequence_embedding(self, seq: int) -> np.ndarray | None:
        """Sequence ``seq``'s pooled embedding from the last decode (a copy); None without pooling."""
        ptr = self._lib.llama_get_embeddings_seq(self.ptr, seq)
        if not ptr:
            return None
        return np.ctypeslib.as_array(ptr, shape=(self.n_embd,)).astype(np.float32)

    def decode(self, batch: Batch) -> int:
        return int(self._lib.llama_decode(self.ptr, batch.raw))

    def logits(self, index: int, n_vocab: int) -> np.ndarray:
        """The logits at batch index ``index`` of the last decode (a view, valid until the next)."""
        ptr = self._lib.llama_get_logits_ith(self.ptr, index)
        return np.ctypeslib.as_array(ptr, shape=(n_vocab,))

    def forget(self, seq: int, from_pos: int = 0) -> bool:
        """Drop sequence ``seq``'s KV from position ``from_pos`` on. False when the memory cannot cut
        a sequence part-way (recurrent and hybrid models): then the whole sequence is dropped."""
        if not self.memory:
            return from_pos == 0
        if self._lib.llama_memory_seq_rm(self.memory, seq, from_pos, -1):
            return True
        self._lib.llama_memory_seq_rm(self.memory, seq, -1, -1)
        return False

    def save_sequence(self, seq: int) -> SequenceState:
        """Sequence ``seq``'s KV state (llama_state_seq_get_data), to put back with ``restore_sequence``."""
        lib = self._lib
        size = int(lib.llama_state_seq_get_size(self.ptr, seq))
        buf = np.empty(size, dtype=np.uint8)  # not zero-filled first, as a ctypes buffer would be
        n = int(lib.llama_state_seq_get_data(self.ptr, buf.ctypes.data_as(ctypes.POINTER(ctypes.c_uint8)), size, seq))
        return SequenceState(buf, n)

    def restore_sequence(self, seq: int, state: SequenceState) -> bool:
        """Replace sequence ``seq``'s KV with a saved state; False if llama.cpp refused it (the
        sequence is then empty)."""
        lib = self._lib
        n = int(lib.llama_state_seq_set_data(self.ptr, state.buffer.ctypes.data_as(ctypes.POINTER(ctypes.c_uint8)),
                                             state.size, seq))
        if n == 0:
            lib.llama_memory_seq_rm(self.memory, seq, -1, -1)
        return n != 0

    def copy_sequence(self, src: int, dst: int) -> None:
        """Make sequence ``dst`` hold ``src``'s KV. Whole sequences only: with a stream per sequence
        llama.cpp copies the buffer (at the next decode) and asserts that no range was given."""
        self._lib.llama_memory_seq_cp(self.memory, src, dst, -1, -1)

    def abort_decodes(self) -> None:
        """Make every decode from now on return "aborted" (shutdown).

        Installed only when needed: ggml calls it between graph nodes (hundreds of Python calls per
        token). The CPU backend reads it when a decode starts, so the running decode completes.
        """
        if not self.ptr:  # freed already (a model put to sleep, then shut down)
            return
        self._abort_callback = self._lib.ggml_abort_callback(lambda _data: True)
        self._lib.llama_set_abort_callback(self.ptr, self._abort_callback, None)

    def close(self) -> None:
        if self.ptr:
            self._lib.llama_free(self.ptr)
            self.ptr = None


class Batch:
    """A reusable ``llama_batch`` of up to ``capacity`` tokens, one sequence id per token."""

    def __init__(self, capacity: int) -> None:
        self._lib = llama()
        self.capacity = capacity
        self.raw = self._lib.llama_batch_init(capacity, 0, 1)
        self.n = 0

    def clear(self) -> None:
        self.n = 0
        self.raw.n_tokens = 0

    def add(self, token: int, pos: int, seq: int, logits: bool) -> int:
        """Append one token; returns its index (the index to sample from when ``logits``)."""
        i = self.n
        raw = self.raw
        raw.token[i] = token
        raw.pos[i] = pos
        raw.n_seq_id[i] = 1
        raw.seq_id[i][0] = seq
        raw.logits[i] = logits
        self.n = i + 1
        raw.n_tokens = self.n
        return i

    @property
    def free(self) -> int:
        return self.capacity - self.n

    def close(self) -> None:
        if self.raw is not None:
            self._lib.llama_batch_free(self.raw)
            self.raw = None


_DEFAULT_SEED = 0xFFFFFFFF  # LLAMA_DEFAULT_SEED: a random seed

MAX_CANDIDATES = 1000
"""The most tokens one request's sampler keeps after top-k (``top_k: 0`` included). Every sequence
of a model is sampled on the model's one engine thread, so a request's sampling time delays all its
neighbours: without top-k, top-p sorts the whole vocabulary (~17 ms per token for Gemma's 262k
tokens, against 0.2 ms with top-k 40 and 0.7 ms with 1000)."""


class GrammarError(ValueError):
    """llama.cpp could not parse a GBNF grammar (its parser logs why)."""


class _GrammarStart:
    """Watches the free text of a lazy grammar's answer for its trigger (``GrammarTrigger``) and
    returns the tokens the grammar must take from there on. The laziness is done here, not by
    llama.cpp's lazy grammar: that one feeds the trigger's text to the grammar unchecked, and text
    the grammar rejects makes it throw through the C API — the process ends. Here every token is
    checked before the grammar takes it, and a trigger whose text the grammar refuses is let go."""

    # A pattern is tried while the answer is this short: it describes how an answer starts.
    PATTERN_WINDOW = 512

    def __init__(self, model: NativeModel, trigger: GrammarTrigger) -> None:
        self._model = model
        self.token_ids: set[int] = set()
        self._words: list[bytes] = []
        for word in trigger.words:
            ids = model.tokenize(word, add_special=False, parse_special=True, limit=64)
            if len(ids) == 1:  # a token of its own (Qwen's <tool_call>): no text to search
                self.token_ids.add(ids[0])
            else:
                self._words.append(word.encode())
        self._patterns = [re.compile(p.encode()) for p in trigger.patterns]
        self._text = bytearray()
        self._tokens: list[int] = []
        self._starts: list[int] = []  # where each token's bytes start in ``_text``

    def feed(self, token: int) -> list[int] | None:
        """``token`` was generated: the tokens from the trigger's start up to it, if it completes one."""
        if token in self.token_ids:
            return [token]
        piece = self._model.piece(token)
        self._starts.append(len(self._text))
        self._tokens.append(token)
        self._text += piece
        at = -1
        for word in self._words:
            found = self._text.find(word, max(0, self._starts[-1] - len(word) + 1))
            if found >= 0:
                at = found
        if at < 0 and len(self._text) <= self.PATTERN_WINDOW:
            for pattern in self._patterns:
                match = pattern.match(self._text)
                if match:
                    at = match.start(1)
                    break
        if at < 0:
            return None
        try:
            first = self._starts.index(at)
        except ValueError:
            return None  # the trigger starts inside a token: the grammar cannot take half a token
        return self._tokens[first:]


# llama_token_data as numpy sees it: a candidates array built from the logits in one copy.
_CANDIDATE = np.dtype([("id", "<i4"), ("logit", "<f4"), ("p", "<f4")])


class Sampler:
    """A native llama.cpp sampler chain for one sequence: penalties → logit bias (tokens that must
    never be emitted) → top-k (at most ``MAX_CANDIDATES``) → top-p → min-p → temperature → draw;
    greedy at temperature 0. The ban comes after the penalties, whose arithmetic could otherwise
    turn a banned token's -inf back into a number (or NaN), and a drawn token is checked against
    the ban once more: whatever the samplers do, a banned token is never emitted."""

    def __init__(self, model: NativeModel, config: SamplingConfig, banned: list[int],
                 grammar: str | None = None, *, trigger: GrammarTrigger | None = None) -> None:
        lib = model._lib
        self._lib = lib
        self._n_vocab = model.n_vocab
        # A grammar (GBNF) constrains every token. It is checked against the token the chain chose,
        # and applied to the whole vocabulary only when that token breaks it (llama.cpp's
        # common_sampler does the same: the full pass costs a grammar walk per vocabulary entry).
        self._grammar: Any = None
        if grammar is not None:
            self._grammar = lib.llama_sampler_init_grammar(model.vocab, grammar.encode("utf-8"), b"root")
            if not self._grammar:
                raise GrammarError("the grammar does not parse")
            self._free_grammar = weakref.finalize(self, lib.llama_sampler_free, self._grammar)
            self._free_grammar.atexit = False
            self._ids = np.arange(model.n_vocab, dtype=np.int32)
        # A lazy grammar: free text until its trigger, then the grammar (None: it holds from the start).
        self._waiting = _GrammarStart(model, trigger) if grammar is not None and trigger is not None else None
        # Plain greedy (no penalties) is an argmax over the logits; numpy does it in ~0.1 ms, where
        # llama.cpp first builds a candidate array of the whole vocabulary (~1 ms for 262k tokens,
        # ~10 % of a 4-sequence step here). Same choice: the first maximum, banned tokens excluded.
        self._argmax = config.greedy and not config.penalized  # the argmax is the chain's choice
        self._penalized = config.penalized
        self._banned = np.asarray(banned, dtype=np.intp)
        self._banned_set = frozenset(banned)
        chain_params = lib.llama_sampler_chain_default_params()
        chain_params.no_perf = True
        self.ptr = lib.llama_sampler_chain_init(chain_params)
        # A sampler is built before its request is queued; one dropped on the way (a client gone
        # while admitted) is freed with its Python object. Not at exit: the library may be gone.
        self._free = weakref.finalize(self, lib.llama_sampler_free, self.ptr)
        self._free.atexit = False

        def add(sampler: Any) -> None:
            lib.llama_sampler_chain_add(self.ptr, sampler)

        if (config.repeat_penalty != 1.0 or config.presence_penalty or config.frequency_penalty):
            add(lib.llama_sampler_init_penalties(model.n_vocab, config.penalty_last_n, config.repeat_penalty,
                                                 config.frequency_penalty, config.presence_penalty))
        if banned:
            biases = (lib.llama_logit_bias * len(banned))()
            for i, token in enumerate(banned):
                biases[i].token = token
                biases[i].bias = float("-inf")
            add(lib.llama_sampler_init_logit_bias(model.n_vocab, len(banned), biases))
        if config.greedy:
            add(lib.llama_sampler_init_greedy())
            return
        add(lib.llama_sampler_init_top_k(min(config.top_k, MAX_CANDIDATES) if config.top_k > 0 else MAX_CANDIDATES))
        if config.top_p < 1.0:
            add(lib.llama_sampler_init_top_p(config.top_p, 1))
        if config.min_p > 0.0:
            add(lib.llama_sampler_init_min_p(config.min_p, 1))
        add(lib.llama_sampler_init_temp(config.temperature))
        add(lib.llama_sampler_init_dist(_DEFAULT_SEED if config.seed is None else config.seed))

    def accept_prompt(self, tokens: list[int]) -> None:
        """Feed the prompt to the penalty sampler's history (as llama-server does)."""
        for token in tokens:
            self._lib.llama_sampler_accept(self.ptr, token)

    def sample(self, ctx: NativeContext, index: int) -> int:
        """Draw (and accept) the next token from the logits at batch index ``index``."""
        if self._grammar is not None and self._waiting is None:
            return self._sample_in_grammar(ctx, index)
        token = self._chains_choice(ctx, index)
        if self._waiting is not None:
            self._maybe_start_grammar(token)
        return token

    def _chains_choice(self, ctx: NativeContext, index: int) -> int:
        return self._best_allowed(ctx, index) if self._argmax else self._sample_free(ctx, index)

    def _sample_free(self, ctx: NativeContext, index: int) -> int:
        token = int(self._lib.llama_sampler_sample(self.ptr, ctx.ptr, index))
        if token in self._banned_set:
            # Only when the chain's arithmetic broke down (NaN or infinite logits): the ban has the
            # last word, and the penalties' history also gets the token actually emitted.
            token = self._best_allowed(ctx, index)
            self._lib.llama_sampler_accept(self.ptr, token)
        return token

    def _maybe_start_grammar(self, token: int) -> None:
        assert self._waiting is not None
        tokens = self._waiting.feed(token)
        if tokens is None:
            return
        for t in tokens:
            if not self._allows(t):  # text the grammar does not start with: not a start after all
                self._lib.llama_sampler_reset(self._grammar)
                return
            self._lib.llama_sampler_accept(self._grammar, t)
        self._waiting = None

    def _sample_in_grammar(self, ctx: NativeContext, index: int) -> int:
        lib = self._lib
        logits = ctx.logits(index, self._n_vocab)
        # With penalties, whose history must only ever take the token emitted, choose without
        # accepting; otherwise nothing in the chain keeps history, and its own fast choice (greedy: the
        # argmax, no candidate array of the whole vocabulary) is checked against the grammar as well.
        token = self._apply(logits, self.ptr) if self._penalized else self._chains_choice(ctx, index)
        if not self._allows(token):  # the chain's choice breaks the grammar: choose again within it
            token = self._apply(logits, self._grammar, self.ptr)
            if not self._allows(token):
                # Accepting a token the grammar rejects aborts llama.cpp: never do it.
                raise GrammarError("no token can continue the grammar here")
        lib.llama_sampler_accept(self._grammar, token)
        if self._penalized:
            lib.llama_sampler_accept(self.ptr, token)
        return token

    def _apply(self, logits: np.ndarray, *samplers: Any) -> int:
        """The token ``samplers`` (applied in order) select among all candidates of ``logits``."""
        candidates = np.empty(self._n_vocab, dtype=_CANDIDATE)
        candidates["id"] = self._ids
        candidates["logit"] = logits
        candidates["p"] = 0.0
        cur = self._array(candidates)
        for sampler in samplers:
            self._lib.llama_sampler_apply(sampler, ctypes.byref(cur))
        if cur.selected < 0 or cur.selected >= cur.size:  # a chain that does not select (cannot happen here)
            return int(cur.data[0].id)
        return int(cur.data[cur.selected].id)

    def _allows(self, token: int) -> bool:
        """Whether the grammar, in its current state, lets ``token`` come next."""
        one = np.array([(token, 1.0, 0.0)], dtype=_CANDIDATE)
        cur = self._array(one)
        self._lib.llama_sampler_apply(self._grammar, ctypes.byref(cur))
        return bool(np.isfinite(one["logit"][0]))

    def _array(self, candidates: np.ndarray) -> Any:
        lib = self._lib
        return lib.llama_token_data_array(
            data=candidates.ctypes.data_as(ctypes.POINTER(lib.llama_token_data)), size=len(candidates),
            selected=-1, sorted=False)

    def _best_allowed(self, ctx: NativeContext, index: int) -> int:
        """The most likely token that is not banned (the first one among equals)."""
        logits = ctx.logits(index, self._n_vocab)
        token = int(logits.argmax())  # numpy's argmax stops at the first NaN: checked below
        if token in self._banned_set or np.isnan(logits[token]):
            allowed = np.nan_to_num(logits, nan=-np.inf)
            allowed[self._banned] = -np.inf
            token = int(allowed.argmax())
        return token

    def close(self) -> None:
        if self.ptr:
            self._free()
            self.ptr = None
        if self._grammar is not None:
            self._free_grammar()
            self._grammar = None


@dataclass(frozen=True)
class SpecialTokens:
    """What a text server must know about a vocabulary's special tokens (see ``special_tokens``)."""

    banned: list[int]
    control: dict[str, int]  # text → id of the tokens that only parse_special reads from text


def special_tokens(model: NativeModel) -> SpecialTokens:
    """One scan of the vocabulary (one ctypes call per entry, ~0.1–0.2 s for Gemma's 262k tokens).

    ``banned``: tokens a text server must never emit: control tokens other than end-of-generation
    (``<bos>``, ``<pad>``, ``<unusedN>``) and multimodal placeholders that models mark as ordinary
    user-defined tokens (Gemma 3's ``<start_of_image>``), which would detokenize to literal text.
    A blanket ban on user-defined tokens would be wrong: Gemma also marks runs of newlines, spaces
    and HTML tags that way.

    ``control``: the control (and unknown) tokens by their text: llama.cpp turns that text into the
    token only when tokenizing with ``parse_special`` (user-defined tokens are matched either way),
    so these are exactly the tokens a chat template may write and a message must not.
    """
    import re

    placeholder = re.compile(r"^(?:<(?:start|end)_of_\w+>|<\w*(?:image|audio|video)\w*>|\[multimodal\])$")
    banned: list[int] = []
    control: dict[str, int] = {}
    lib, vocab = model._lib, model.vocab
    get_attr = lib.llama_vocab_get_attr
    special = _ATTR_CONTROL | _ATTR_UNUSED | _ATTR_USER_DEFINED | _ATTR_UNKNOWN
    for token in range(model.n_vocab):
        attr = get_attr(vocab, token)
        if not attr & special:
            continue
        if attr & (_ATTR_CONTROL | _ATTR_UNKNOWN):
            text = lib.llama_vocab_get_text(vocab, token)
            if text:
                control.setdefault(text.decode("utf-8", "replace"), token)
        if model.is_eog(token) or not attr & (_ATTR_CONTROL | _ATTR_UNUSED | _ATTR_USER_DEFINED):
            continue
        if attr & (_ATTR_CONTROL | _ATTR_UNUSED) or placeholder.match(model.token_text(token)):
            banned.append(token)
    return SpecialTokens(banned=banned, control=control)


def banned_tokens(model: NativeModel) -> list[int]:
    """The tokens never to sample (``special_tokens(model).banned``)."""
    return special_tokens(model).banned


def longest_piece_bytes(model: NativeModel) -> int:
    """The longest token's text in bytes: a text of B bytes has at least B / this many tokens.
    ~0.6 s for Gemma's 262k tokens, so only computed for prompts too large to just tokenize."""
    get_piece, vocab = model._lib.llama_token_to_piece, model.vocab
    buf = ctypes.create_string_buffer(256)
    return max(1, max(abs(int(get_piece(vocab, t, buf, len(buf), 0, True))) for t in range(model.n_vocab)))
