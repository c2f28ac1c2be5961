"""``python -m gguf_model_server`` / ``gguf-model-server``."""

from __future__ import annotations


def main(argv: list[str] | None = None) -> int:
    # Imports inside, so that a Ctrl-C while they run exits quietly too.
    try:
        from gguf_model_server.loading import build_registry
        from gguf_model_server.settings import GGUFServerSettings
        from serving_core.cli import run_server

        return run_server("gguf-model-server", GGUFServerSettings, build_registry,
                          "gguf_model_server.app:create_app", argv)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
