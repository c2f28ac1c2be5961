"""The llama-cpp-python backend: load a GGUF file, complete, chat, stream."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from gguf_model_server.default_model import default_model_path, prepare
from gguf_model_server.special_tokens import SpecialTokenFilter
from serving_core.errors import BadRequest, ServerShuttingDown
from serving_core.registry import PermanentLoadError
from serving_core.specs import ModelSpec, parse_options, require_path

log = logging.getLogger("gguf_model_server.llama")

GGUF_MAGIC = b"GGUF"
LLAMA_BACKEND_NAMES = ("llama_cpp", "llama-cpp", "gguf")


class LlamaOptions(BaseModel):
    """Per-model options accepted under ``options:`` in the config."""

    model_config = ConfigDict(extra="forbid")

    n_ctx: int = Field(default=2048, ge=16, le=262_144, description="context window in tokens")
    n_threads: int | None = Field(default=None, ge=1, le=512, description="default: all cores")
    n_batch: int = Field(default=512, ge=1, le=65_536)
    use_mmap: bool = True
    use_mlock: bool = False
    chat_format: str | None = Field(default=None, description="default: the template in the GGUF file")


def _resolve_path(spec: ModelSpec, model_dir: str | None) -> Path:
    path = spec.resolved_path(model_dir)
    if path is None:
        path = default_model_path()
        if not path.is_file():
            # Normally done once by the install step; doing it here keeps a half-set-up machine working.
            log.warning("default model not assembled yet; assembling %s (one-time)", path)
            path = prepare()
    require_path(path, "model file", hint=spec.path_hint(model_dir))
    with path.open("rb") as fh:
        magic = fh.read(4)
    if magic != GGUF_MAGIC:
        raise PermanentLoadError(f"not a GGUF file (bad magic bytes {magic!r}): {path}")
    return path


class LlamaModel:
    """A loaded GGUF model. Not re-entrant: callers serialise through the model's guard."""

    def __init__(self, llm: Any, path: Path) -> None:
        self.llm = llm
        self.path = path
        self.n_ctx: int = llm.n_ctx()
        self._interrupted = threading.Event()
        self._abort_callback: Any = None  # referenced while llama.cpp may call it
        self.special_tokens = SpecialTokenFilter(llm)

    def interrupt(self) -> None:
        """Make every decode from now on abort (shutdown): a running generation ends at its next token.

        llama.cpp's abort callback is installed only now, because ggml calls it between graph
        nodes (hundreds of Python calls per token). The CPU backend reads it when a decode starts,
        so at most the decode already running completes.
        """
        import llama_cpp

        self._interrupted.set()
        self._abort_callback = llama_cpp.ggml_abort_callback(lambda _data: True)
        llama_cpp.llama_set_abort_callback(self.llm.ctx, self._abort_callback, None)

    def count_tokens(self, text: str) -> int:
        return len(self.llm.tokenize(text.encode("utf-8"), add_bos=True, special=True))

    def check_fits(self, prompt: str, max_tokens: int) -> int:
        """Raise BadRequest unless the prompt plus ``max_tokens`` fit in the context; return prompt tokens."""
        n = self.count_tokens(prompt)
        if n >= self.n_ctx:
            raise BadRequest(
                f"prompt is {n} tokens but the model's context window is {self.n_ctx} tokens; "
                "shorten the prompt"
            )
        if n + max_tokens > self.n_ctx:
            raise BadRequest(
                f"prompt ({n} tokens) + max_tokens ({max_tokens}) exceeds the context window of "
                f"{self.n_ctx} tokens; lower max_tokens to at most {self.n_ctx - n}"
            )
        return n

    def complete(self, prompt: str, **params: Any) -> dict[str, Any]:
        """One completion in the OpenAI ``text_completion`` shape llama-cpp-python returns."""
        return self._call(self.llm.create_completion, prompt=prompt, stream=False, **params)  # type: ignore[no-any-return]

    def stream_complete(self, prompt: str, **params: Any) -> Iterator[dict[str, Any]]:
        return self._stream(self._call(self.llm.create_completion, prompt=prompt, stream=True, **params))

    def chat(self, messages: list[dict[str, Any]], **params: Any) -> dict[str, Any]:
        return self._call(self.llm.create_chat_completion, messages=messages, stream=False, **params)  # type: ignore[no-any-return]

    def stream_chat(self, messages: list[dict[str, Any]], **params: Any) -> Iterator[dict[str, Any]]:
        return self._stream(self._call(self.llm.create_chat_completion, messages=messages, stream=True, **params))

    def _stream(self, chunks: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        try:
            yield from chunks
        except RuntimeError:
            self._raise_if_interrupted()
            raise

    def _raise_if_interrupted(self) -> None:
        if self._interrupted.is_set():
            # llama-cpp-python reports the aborted decode as RuntimeError("llama_decode returned 2").
            raise ServerShuttingDown("the server is shutting down; the generation was stopped") from None

    def _call(self, fn: Any, **kwargs: Any) -> Any:
        # Start from an empty context: llama-cpp-python would otherwise reuse the KV of the longest
        # prefix shared with the *previous* request, and a prefix evaluated in another batch shape
        # gives slightly different logits — the same request (temperature 0, same seed) then
        # continued differently depending on what came before. Re-reading the prompt is the price.
        self.llm.reset()
        kwargs["logits_processor"] = [self.special_tokens]
        try:
            return fn(**kwargs)
        except ValueError as exc:
            # llama-cpp-python signals "prompt too long for the context" with ValueError.
            if "context window" in str(exc):
                raise BadRequest(str(exc)) from None
            raise
        except RuntimeError:
            self._raise_if_interrupted()
            raise

    def warmup(self) -> None:
        """One token, so the first real request does not pay for first-decode setup."""
        self.llm.create_completion(prompt="Hello", max_tokens=1, temperature=0.0)

    def close(self) -> None:
        close = getattr(self.llm, "close", None)
        if close is not None:
            close()


class _NoSuppression:
    """Stands in for llama_cpp's ``suppress_stdout_stderr``.

    That helper dup2()s the process-wide fds 1 and 2 to /dev/null and back. Two models loading in
    parallel interleave those swaps, and the second restore leaves stderr pointing at /dev/null
    for good: every log line after it is lost (seen here with 8 parallel loads). llama.cpp's own
    log output is already filtered by llama_cpp's log callback (errors only when verbose=False),
    so nothing is lost by not redirecting.
    """

    def __init__(self, disable: bool = True) -> None:
        pass

    def __enter__(self) -> _NoSuppression:
        return self

    def __exit__(self, *_: object) -> None:
        return None


_patch_lock = threading.Lock()
_GGML_LOG_ERROR = 4  # ggml.h: NONE 0, DEBUG 1, INFO 2, WARN 3, ERROR 4, CONT 5
_GGML_LOG_CONT = 5


class _LlamaErrors(threading.local):
    """llama.cpp's error messages, collected per loading thread, so a failed load can say why."""

    def __init__(self) -> None:
        self.lines: list[str] | None = None
        self.last_level = 0


_errors = _LlamaErrors()
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
    """Import llama_cpp (lazily: it is a large part of cold start) with thread-safe stdio handling."""
    global _log_callback
    with _patch_lock:
        import ctypes

        import llama_cpp
        import llama_cpp._internals
        import llama_cpp.llama
        import llama_cpp.llama_chat_format

        for module in (llama_cpp.llama, llama_cpp._internals, llama_cpp.llama_chat_format):
            module.suppress_stdout_stderr = _NoSuppression  # type: ignore[attr-defined]
        if _log_callback is None:
            # Only errors, into our log (and into the failing model's reason); the default callback
            # prints them to stderr, where they cannot be tied to a model.
            _log_callback = llama_cpp.llama_log_callback(_on_llama_log)
            llama_cpp.llama_log_set(_log_callback, ctypes.c_void_p(0))
        return llama_cpp.Llama


def make_loader(model_dir: str | None):  # noqa: ANN201 - returns serving_core.registry.Loader
    """A registry loader that builds LlamaModel handles from specs."""

    def load(spec: ModelSpec) -> LlamaModel:
        if spec.backend not in LLAMA_BACKEND_NAMES:
            raise PermanentLoadError(f"unknown backend '{spec.backend}' (the GGUF server serves 'llama_cpp')")
        opts = parse_options(LlamaOptions, spec)
        path = _resolve_path(spec, model_dir)
        Llama = import_llama()
        _errors.lines = []
        try:
            llm = Llama(
                model_path=str(path),
                n_ctx=opts.n_ctx,
                n_threads=opts.n_threads or os.cpu_count() or 1,
                n_batch=opts.n_batch,
                use_mmap=opts.use_mmap,
                use_mlock=opts.use_mlock,
                chat_format=opts.chat_format,
                verbose=False,
            )
        except ValueError as exc:
            detail = "; ".join(_errors.lines or [])
            raise RuntimeError(f"{exc} ({detail})" if detail else str(exc)) from None
        finally:
            _errors.lines = None
        return LlamaModel(llm, path)

    return load
