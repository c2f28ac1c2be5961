"""GGUF server settings: ``GGUF_*`` environment variables,
plus the original servers' ``MODEL_DIR`` and ``MODEL_SERVER_PORT``."""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any, ClassVar

from pydantic import AliasChoices, BaseModel, Field
from pydantic_settings import SettingsConfigDict

from gguf_model_server.llama_backend import LLAMA_BACKEND_NAMES, LlamaOptions
from model_store.embedded import EMBEDDED_MODELS
from serving_core.settings import ConfigError, ServerSettings
from serving_core.specs import ModelSpec

# An embedding model's defaults: a request's inputs (up to this many) are decoded together, each
# within its 512 tokens of training; n_batch bounds the tokens of one decode (and its attention).
EMBEDDING_MODEL_OPTIONS = {"embeddings": True, "n_ctx": 512, "parallel": 32, "n_batch": 512}


class GGUFServerSettings(ServerSettings):
    model_config = SettingsConfigDict(
        env_prefix="GGUF_", extra="forbid", env_nested_delimiter="__", populate_by_name=True
    )

    default_port: ClassVar[int] = 8001
    backend_options: ClassVar[dict[str, type[BaseModel]]] = dict.fromkeys(LLAMA_BACKEND_NAMES, LlamaOptions)
    default_backend: ClassVar[str | None] = "llama_cpp"

    port: int = Field(
        default=0, ge=0, le=65535, validation_alias=AliasChoices("GGUF_PORT", "MODEL_SERVER_PORT"),
        description="0 means 8001",
    )
    model_dir: str | None = Field(
        default=None, validation_alias=AliasChoices("GGUF_MODEL_DIR", "MODEL_DIR"),
        description="base directory for relative model paths",
    )

    def weight_files(self) -> list[Path]:
        from gguf_model_server.model_files import model_file

        return [model_file(spec, self.model_dir) for spec in self.models if spec.load == "eager"]

    def default_models(self) -> list[ModelSpec]:
        """Every embedded model, the default (Gemma) first: it serves requests that name no model. The
        embedding model gets an embedding context: its training length, many short inputs per decode."""
        return [ModelSpec(name=name, backend="llama_cpp",
                          options=EMBEDDING_MODEL_OPTIONS if model.use == "embedding" else {})
                for name, model in EMBEDDED_MODELS.items()]

    @classmethod
    def add_cli_arguments(cls, parser: argparse.ArgumentParser) -> None:
        # llama-server's spellings: a quick start on one's own files without writing a config.
        parser.add_argument("-m", "--model", action="append", metavar="PATH",
                            help="serve this GGUF file (repeatable; named after the file); replaces the "
                                 "configured models")
        parser.add_argument("-c", "--ctx-size", type=int, metavar="N",
                            help="context window of each sequence of the -m models (options.n_ctx)")
        parser.add_argument("-np", "--parallel", type=int, metavar="N",
                            help="sequences decoded together for the -m models (options.parallel)")

    @classmethod
    def cli_overrides(cls, args: argparse.Namespace) -> dict[str, Any]:
        options = {k: v for k, v in (("n_ctx", args.ctx_size), ("parallel", args.parallel)) if v is not None}
        if not args.model:
            if options:
                raise ConfigError("--ctx-size and --parallel go with -m/--model; for configured models set "
                                  "options.n_ctx and options.parallel in the config file")
            return {}
        names: list[str] = []
        for path in args.model:
            stem = re.sub(r"[^A-Za-z0-9._:/-]", "-", Path(path).stem).lstrip("._:/-") or "model"
            name, n = stem[:120], 2
            while name in names:
                name, n = f"{stem[:116]}-{n}", n + 1
            names.append(name)
        return {"models": [{"name": name, "backend": "llama_cpp", "path": str(Path(path).expanduser().absolute()),
                            "options": options} for name, path in zip(names, args.model, strict=True)]}
