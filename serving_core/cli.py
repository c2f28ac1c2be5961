"""Command-line entry shared by both servers: ``--config``, ``--host``, ``--port``."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable

from fastapi import FastAPI

from serving_core.settings import ConfigError, ServerSettings


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def run_server(
    prog: str,
    settings_cls: type[ServerSettings],
    app_factory: Callable[[ServerSettings], FastAPI],
    argv: list[str] | None = None,
) -> int:
    """Parse arguments, validate the configuration, serve until stopped."""
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
    import uvicorn  # imported here so `--help` and config errors stay fast

    uvicorn.run(
        app_factory(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        timeout_graceful_shutdown=10,
    )
    return 0
