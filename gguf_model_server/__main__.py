"""``python -m gguf_model_server`` / ``gguf-model-server``."""

from __future__ import annotations

from gguf_model_server.loading import build_registry
from gguf_model_server.settings import GGUFServerSettings
from serving_core.cli import run_server


def main(argv: list[str] | None = None) -> int:
    return run_server("gguf-model-server", GGUFServerSettings, build_registry, "gguf_model_server.app:create_app",
                      argv)


if __name__ == "__main__":
    raise SystemExit(main())
