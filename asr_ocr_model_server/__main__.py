"""``python -m asr_ocr_model_server`` / ``asr-ocr-model-server``."""

from __future__ import annotations


def main(argv: list[str] | None = None) -> int:
    import time

    started_at = time.time()  # the interpreter runs our code: the first start-up mark
    # Signals first: a Ctrl-C while the imports below run is then recorded and acted on after them
    # (quietly, exit 130), instead of raising KeyboardInterrupt in the middle of an import.
    from serving_core.signals import ShutdownSignals

    signals = ShutdownSignals()
    signals.install()
    from serving_core.openmp import limit_openmp_spinning

    limit_openmp_spinning()  # before any model library (and its OpenMP) loads
    from asr_ocr_model_server.backends import build_registry
    from asr_ocr_model_server.settings import AsrOcrServerSettings
    from serving_core.cli import run_server

    return run_server("asr-ocr-model-server", AsrOcrServerSettings, build_registry,
                      "asr_ocr_model_server.app:create_app", argv, signals, started_at)


if __name__ == "__main__":
    raise SystemExit(main())
