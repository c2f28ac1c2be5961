"""Command-line entry shared by both servers: ``--config``, ``--host``, ``--port``."""

from __future__ import annotations

import argparse
import importlib
import logging
import signal
import sys
import time
from collections.abc import Callable
from types import FrameType

from serving_core.registry import ModelRegistry
from serving_core.settings import ConfigError, ServerSettings

log = logging.getLogger("serving_core.cli")


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def _exit_on_sigterm(_signum: int, _frame: FrameType | None) -> None:
    """SIGTERM's action once uvicorn has shut down gracefully (it re-raises the signal it caught), or
    before it runs: a clean exit, so Python joins the worker threads instead of dying under them."""
    raise SystemExit(0)


def run_server(
    prog: str,
    settings_cls: type[ServerSettings],
    build_registry: Callable[[ServerSettings], ModelRegistry],
    app_factory: str,
    argv: list[str] | None = None,
) -> int:
    """Parse arguments, validate the configuration, start loading, serve until stopped.

    ``app_factory`` ("module:function") is imported only after the models started loading: the
    web stack's imports (FastAPI alone is ~0.5 s) then overlap with reading the weights, most of
    which runs in C with the GIL released.
    """
    t0 = time.perf_counter()
    parser = argparse.ArgumentParser(prog=prog, description=f"{prog}: serve models over HTTP")
    parser.add_argument("--config", help="YAML configuration file (environment variables override it)")
    parser.add_argument("--host", help=f"bind address (default {settings_cls.model_fields['host'].default})")
    parser.add_argument("--port", type=int, help=f"port (default {settings_cls.default_port})")
    parser.add_argument("--log-level", help="debug, info, warning, error")
    args = parser.parse_args(argv)
    overrides = {k: v for k, v in {"host": args.host, "port": args.port, "log_level": args.log_level}.items()
                 if v is not None}
    try:
        settings = settings_cls.load(args.config, **overrides)
    except ConfigError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    registry = build_registry(settings)
    if settings.early_start:
        registry.start_loading()
    module, _, func = app_factory.partition(":")
    create_app = getattr(importlib.import_module(module), func)
    import uvicorn

    from serving_core.http_server import raise_open_file_limit, uvicorn_config

    app = create_app(settings, registry)
    log.info("web stack imported and app built in %.2f s after start", time.perf_counter() - t0)
    raise_open_file_limit()
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    server = uvicorn.Server(uvicorn_config(app, settings))
    try:
        server.run()
    except KeyboardInterrupt:
        return 130  # Ctrl-C: the shell's convention
    return 0 if server.started else 3  # 3: uvicorn's "could not start" (e.g. the port is taken)
