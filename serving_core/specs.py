"""What configuration says about one model."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from serving_core.errors import PermanentLoadError

OptionsT = TypeVar("OptionsT", bound=BaseModel)


class ModelSpec(BaseModel):
    """One configured model: its public name, backend, where its weights are, and backend options."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$")
    backend: str = Field(min_length=1, description="backend kind, e.g. 'llama_cpp', 'faster_whisper'")
    path: str | None = Field(
        default=None,
        description="weights file or directory; relative paths resolve against MODEL_DIR. "
        "Omit to use the backend's packaged default.",
    )
    warmup: bool | None = Field(
        default=None, description="run one tiny inference before reporting ready (default: server-wide setting)"
    )
    options: dict[str, Any] = Field(default_factory=dict, description="backend-specific options")
    load: Literal["eager", "lazy"] = Field(
        default="eager", description="eager: at start; lazy: on its first request (which waits for the load)"
    )
    keep_alive: float = Field(
        default=-1, ge=-1, le=31_536_000,
        description="seconds a model stays loaded without requests before it is unloaded; -1 = forever "
        "(Ollama's meaning); it loads again on its next request",
    )
    on_idle: Literal["unload", "sleep"] = Field(
        default="unload", description="what keep_alive does to an idle model: unload it, or put it to sleep "
        "(level 1: its KV cache freed, its weights kept; a backend that cannot sleep unloads)")
    load_timeout: float = Field(
        default=300, gt=0, le=86_400, description="a load still running after this many seconds fails"
    )

    @field_validator("path")
    @classmethod
    def _non_empty(cls, v: str | None) -> str | None:
        if v is not None and not v.strip():
            raise ValueError("path must not be empty; omit it to use the packaged default")
        return v

    def load_key(self, path: Path | None = None) -> str:
        """Equal for specs that would load the very same model (names aside). ``path``: the file the
        spec resolves to, when the server knows it (a spec without a path may mean a different
        embedded model per name)."""
        import json

        return json.dumps([self.backend, str(path or self.path), self.options, self.warmup, self.load,
                           self.keep_alive, self.on_idle, self.load_timeout], sort_keys=True, default=str)

    def resolved_path(self, model_dir: str | None) -> Path | None:
        """The weights path, absolute: ``~`` expanded, relative paths anchored at ``model_dir`` (or,
        without one, at the working directory)."""
        if self.path is None:
            return None
        p = Path(self.path).expanduser()
        if not p.is_absolute() and model_dir:
            p = Path(model_dir).expanduser() / p
        return p.absolute()

    def path_hint(self, model_dir: str | None) -> str:
        """For a relative ``path``: what it was resolved against, to go with a "not found"."""
        if self.path is None or Path(self.path).expanduser().is_absolute():
            return ""
        if model_dir:
            return f" (path '{self.path}' is relative to MODEL_DIR={model_dir})"
        return f" (path '{self.path}' is relative to the working directory {Path.cwd()}; MODEL_DIR is not set)"


def parse_options(options_model: type[OptionsT], spec: ModelSpec) -> OptionsT:
    """Validate a spec's backend options; a bad one fails that model (not the server) with its name."""
    try:
        return options_model(**spec.options)
    except ValidationError as exc:
        raise PermanentLoadError(
            "invalid options: " + "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        ) from None


def _kind_of(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a named pipe (FIFO)"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device")):
        if test(mode):
            return name
    return "not a regular file"


def require_path(path: Path, what: str, kind: Literal["file", "directory"] = "file", hint: str = "") -> Path:
    """``path`` if it is an existing regular file (or directory); otherwise a PermanentLoadError that
    says what is wrong: missing (with ``hint``, e.g. what a relative path was resolved against), or
    the wrong kind of thing (a FIFO would block ``open()``)."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise PermanentLoadError(f"{what} not found: {path}{hint}") from None
    except OSError as exc:
        raise PermanentLoadError(f"{what} cannot be read ({exc.strerror}): {path}") from None
    ok = stat.S_ISREG(mode) if kind == "file" else stat.S_ISDIR(mode)
    if not ok:
        raise PermanentLoadError(f"{what} is {_kind_of(mode)}, not a {kind}: {path}")
    return path
