"""``python -m asr_ocr_model_server`` / ``asr-ocr-model-server``."""

from __future__ import annotations

from asr_ocr_model_server.backends import build_registry
from asr_ocr_model_server.settings import AsrOcrServerSettings
from serving_core.cli import run_server


def main(argv: list[str] | None = None) -> int:
    return run_server("asr-ocr-model-server", AsrOcrServerSettings, build_registry,
                      "asr_ocr_model_server.app:create_app", argv)


if __name__ == "__main__":
    raise SystemExit(main())
