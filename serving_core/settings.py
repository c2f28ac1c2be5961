"""Settings shared by both servers: YAML file first, environment variables over it."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

import yaml
from pydantic import (
    AliasChoices,
    BaseModel,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from serving_core.errors import did_you_mean, echo
from serving_core.specs import ModelSpec

S = TypeVar("S", bound="ServerSettings")


class ConfigError(Exception):
    """The configuration is invalid; the message names the field."""


class ServerSettings(BaseSettings):
    """Fields every model server has. Subclasses set the env prefix, port and default models."""

    model_config = SettingsConfigDict(extra="forbid", env_nested_delimiter="__", populate_by_name=True)

    default_port: ClassVar[int] = 8000
    default_max_request_bytes: ClassVar[int] = 8 * 1024 * 1024
    # Each backend this server has, with the model of its `options:`; checked at start (empty = not checked).
    backend_options: ClassVar[dict[str, type[BaseModel]]] = {}
    # The backend a model without `backend:` gets (None: it must be given).
    default_backend: ClassVar[str | None] = None
    _models_defaulted: bool = PrivateAttr(default=False)

    host: str = Field(default="127.0.0.1", description="interface to bind; 0.0.0.0 for every interface "
                      "(the Docker images pass it), 127.0.0.1 by default as llama-server and Ollama do")
    port: int = Field(default=0, ge=0, le=65535, description="0 means the server's default port")
    health_port: int | None = Field(
        default=None, ge=1, le=65535,
        description="also serve /health, /health/live, /health/ready, /health/startup and /metrics on this port, "
        "outside max_connections and never dropped: for orchestrators' probes (default: off)",
    )
    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"
    log_format: Literal["text", "json"] = Field(default="text", description="json: one JSON object per line")
    model_dir: str | None = Field(default=None, description="base directory for relative model paths")
    models: list[ModelSpec] = Field(default_factory=list)
    loader_workers: int | None = Field(
        default=None, ge=1, le=64, description="parallel model loads; default one per model; 1 = sequential"
    )
    load_retries: int = Field(default=1, ge=0, le=10)
    retry_delay_seconds: float = Field(default=0.5, ge=0, le=60)
    warmup: bool = Field(default=False, description="run one tiny inference per model before it is ready")
    strict_readiness: bool = Field(
        default=False, description="/health answers 503 when any model failed (default: 200 'degraded')"
    )
    max_waiting_per_model: int = Field(
        default=32, ge=0, le=10_000, description="requests queued per model before 429"
    )
    max_request_bytes: int = Field(
        default=0, ge=0, description="largest request body accepted (413 above it); 0 = the server's default"
    )
    share_identical_models: bool = Field(
        default=True,
        description="names with the same backend, path and options share one loaded model (and its queue)",
    )
    early_start: bool = Field(
        default=True,
        description="start loading models before importing the web stack, so imports overlap with loading",
    )
    read_ahead: bool = Field(
        default=True,
        description="ask the kernel to read the eager models' weight files into the page cache as soon as the "
                    "configuration is read, in the background, so the disk works while Python imports",
    )
    compute_slots: int | None = Field(
        default=None, ge=1, le=256, description="model calls running at once across all models; default from cores"
    )
    show_paths_in_errors: bool = Field(
        default=False,
        description="show file-system paths in /health, /models and error messages (default: file names only; "
        "the log always has the full path)",
    )
    # HTTP server limits: what stops slow or hostile clients from holding the server's connections.
    header_timeout_seconds: float = Field(
        default=10.0, gt=0, le=600,
        description="a connection whose request head (line + headers) is not complete this long after it "
        "started is closed (slowloris)",
    )
    body_timeout_seconds: float = Field(
        default=20.0, gt=0, le=3600,
        description="a request body may take this long, plus one second per min_body_bytes_per_second bytes "
        "received; slower bodies get 408 and the connection is closed (a body trickled to hold a connection)",
    )
    min_body_bytes_per_second: float = Field(
        default=500.0, gt=0, le=1e9,
        description="the slowest body rate kept after body_timeout_seconds (see there)",
    )
    keep_alive_seconds: float = Field(
        default=5.0, gt=0, le=600,
        description="idle keep-alive connections close after this; the head and keep-alive deadlines shrink "
        "(to a tenth) as open connections approach max_connections",
    )
    max_connections: int = Field(
        default=10_000, ge=1, le=1_000_000,
        description="open connections kept (~7 KB each; cut to what the open-file limit allows); a new one "
        "past this closes the one that wasted its slot longest (no request sent, idle keep-alive, slow body); "
        "only when none can go do requests get 503 (health probes never do)",
    )
    max_header_bytes: int = Field(default=16 * 1024, ge=1024, le=1024 * 1024,
                                  description="request line + headers; larger heads get 431")
    shutdown_grace_seconds: float = Field(
        default=30.0, ge=0, le=3600,
        description="on SIGTERM/SIGINT (the first), time running requests and streams get to finish while new "
        "ones get 503 and /health/ready says draining; a second signal stops at once",
    )
    shutdown_drain_seconds: float = Field(
        default=30.0, ge=0, le=3600,
        description="after the grace, time a model call still running gets to stop before its model is left "
        "unfreed (models are never freed under a running call)",
    )
    max_drain_bytes: int = Field(
        default=1024**3, ge=0,
        description="a refused (413) upload up to this size is read and discarded so the client sees the 413 "
        "instead of a connection reset",
    )

    on_demand_load_wait_seconds: float = Field(
        default=120, gt=0, le=3600,
        description="how long a request waits for a model that loads on demand (load: lazy, or unloaded "
        "after keep_alive) before it gets 503 + Retry-After",
    )
    idle_check_seconds: float = Field(default=1.0, gt=0, le=3600, description="how often keep_alive is checked")
    # Who may call the server.
    api_key: SecretStr | None = Field(
        default=None,
        description="when set, every route except /health* and the docs needs `Authorization: Bearer KEY` or "
        "`X-API-Key: KEY` (401 otherwise)",
    )
    metrics_require_api_key: bool = Field(default=True, description="/metrics needs the API key (when one is set)")
    cors_origins: list[str] = Field(
        default_factory=list,
        description="origins a browser may call from (e.g. https://app.example); empty = CORS off; '*' = any",
    )
    cors_allow_credentials: bool = Field(default=False, description="let browsers send cookies/auth cross-origin")
    trusted_hosts: list[str] = Field(
        default_factory=lambda: ["*"],
        description="Host header values accepted (400 otherwise), against DNS rebinding; e.g. "
        "['localhost', '127.0.0.1', 'models.internal']; '*' = any",
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        yaml_file = settings_cls.model_config.get("yaml_file")
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if yaml_file:
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=yaml_file))
        return tuple(sources)

    @field_validator("log_level", mode="before")
    @classmethod
    def _lower(cls, v: Any) -> Any:
        return v.lower() if isinstance(v, str) else v

    @model_validator(mode="before")
    @classmethod
    def _default_backend(cls, data: Any) -> Any:
        # A server with one backend family (GGUF: llama_cpp) need not be told it for every model.
        if cls.default_backend and isinstance(data, dict) and isinstance(data.get("models"), list):
            data = {**data, "models": [{**m, "backend": cls.default_backend}
                                       if isinstance(m, dict) and "backend" not in m else m for m in data["models"]]}
        return data

    @model_validator(mode="after")
    def _check_models(self) -> ServerSettings:
        self._models_defaulted = not self.models
        if not self.models:
            self.models = self.default_models()
        names = [m.name for m in self.models]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"models: duplicate model names {dupes}")
        if self.port == 0:
            self.port = self.default_port
        if self.health_port is not None and self.health_port == self.port:
            raise ValueError(f"health_port: {self.health_port} is the server's port; choose another")
        if self.max_request_bytes == 0:
            self.max_request_bytes = self.default_max_request_bytes
        if self.cors_allow_credentials and "*" in self.cors_origins:
            raise ValueError("cors_origins: '*' cannot be combined with cors_allow_credentials (any site could "
                             "then act with the user's credentials); list the origins instead")
        if self.api_key is not None and not self.api_key.get_secret_value().strip():
            raise ValueError("api_key: empty; unset it to turn authentication off")
        return self

    def default_models(self) -> list[ModelSpec]:
        """The embedded models served when the config names none."""
        return []

    @property
    def models_defaulted(self) -> bool:
        """No model was configured (``models: []`` or none at all): the embedded defaults are served."""
        return self._models_defaulted

    @classmethod
    def add_cli_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """Server-specific command-line flags (beyond --config/--host/--port/--log-level)."""

    @classmethod
    def cli_overrides(cls, args: argparse.Namespace) -> dict[str, Any]:
        """Settings the server-specific flags set (they win over the file and the environment)."""
        return {}

    def weight_files(self) -> list[Path]:
        """The files (or directories) the eager models' loads will read, for ``read_ahead``; found
        without importing a model library (none, where that is not possible)."""
        return []

    def effective_compute_slots(self) -> int:
        """Default: one model call per two cores, at least one, so decodes don't fight for cores."""
        return self.compute_slots or max(1, (os.cpu_count() or 1) // 2)

    def model_problems(self) -> list[str]:
        """Every configured model's backend and ``options:`` checked now, so that a typo stops the
        server at start instead of leaving one model failed for good."""
        backends = self.backend_options
        if not backends:
            return []
        problems = []
        for i, spec in enumerate(self.models):
            if spec.backend not in backends:
                problems.append(f"models[{i}].backend: unknown backend '{spec.backend}'; "
                                f"choose one of {', '.join(sorted(backends))}{did_you_mean(spec.backend, backends)}")
                continue
            options = backends[spec.backend]
            try:
                options(**spec.options)
            except ValidationError as exc:
                problems += [_problem(("models", i, "options", *e["loc"]), e, options.model_fields)
                             for e in exc.errors()]
        return problems

    @classmethod
    def load(cls: type[S], config_path: str | Path | None = None, **overrides: Any) -> S:
        """Read the YAML file (if any), apply env overrides, validate; raise ConfigError naming the
        field, where its value came from, and (for a typo) the field that was probably meant."""
        path = None
        if config_path is not None:
            path = Path(config_path).expanduser()
            if not path.is_file():
                raise ConfigError(f"config file not found: {path}")
            klass: type[S] = type(cls.__name__, (cls,), {"model_config": {**cls.model_config, "yaml_file": path}})
        else:
            klass = cls
        try:
            settings = klass(**overrides)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise ConfigError(f"{where}: not valid YAML: {problem}") from None
        except ValidationError as exc:
            lines = [cls._explain(e, path, overrides) for e in exc.errors()]
            raise ConfigError("invalid configuration:\n" + "\n".join(f"  {ln}" for ln in lines)) from None
        problems = settings.model_problems()
        if problems:
            source = f" in {path}" if path else ""
            raise ConfigError(f"invalid model configuration{source}:\n" + "\n".join(f"  {p}" for p in problems))
        return settings

    @classmethod
    def _explain(cls, err: Any, path: Path | None, overrides: dict[str, Any]) -> str:
        """One error line, saying where the value came from (command line, environment, file)."""
        loc = tuple(err["loc"])
        field = str(loc[0]) if loc else ""
        known = cls.model_fields
        if len(loc) > 2 and loc[0] == "models" and loc[2] != "options":
            known = ModelSpec.model_fields
        line = _problem(loc, err, known)
        if field in overrides:
            return f"{line} (from the command line)"
        env = cls._env_source(field)
        if env is not None:
            return f"{line} (from the environment variable {env}={echo(os.environ[env])!r})"
        return f"{line} (in {path})" if path else line

    @classmethod
    def _env_source(cls, field: str) -> str | None:
        """The environment variable that set ``field``, if one did."""
        info = cls.model_fields.get(field)
        names = [f"{cls.model_config.get('env_prefix', '')}{field}".upper()]
        if info is not None and isinstance(info.validation_alias, AliasChoices):
            names = [str(c) for c in info.validation_alias.choices] + names
        return next((n for n in names if n in os.environ), None)


def _loc(parts: tuple[Any, ...]) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"




def _problem(loc: tuple[Any, ...], err: Any, known_fields: Any) -> str:
    """``models[0].options.n_ctxx: unknown field (did you mean 'n_ctx'?)``, or pydantic's message."""
    if err.get("type") == "extra_forbidden" and loc:
        return f"{_loc(loc)}: unknown field{did_you_mean(str(loc[-1]), known_fields)}"
    msg = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
    if not loc:
        return msg
    if err.get("type") == "literal_error":
        msg = f"{msg}; got {echo(err.get('input'))!r}"
    return f"{_loc(loc)}: {msg}"
