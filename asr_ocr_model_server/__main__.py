"""``python -m asr_ocr_model_server`` / ``asr-ocr-model-server``."""

from __future__ import annotations


def main(argv: list[str] | None = None) -> int:
    # Imports inside, so that a Ctrl-C while they run exits quietly too.
    try:
        from asr_ocr_model_server.backends import build_registry
        from asr_ocr_model_server.settings import AsrOcrServerSettings
        from serving_core.cli import run_server

        return run_server("asr-ocr-model-server", AsrOcrServerSettings, build_registry,
                          "asr_ocr_model_server.app:create_app", argv)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
