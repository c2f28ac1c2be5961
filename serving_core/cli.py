"""Command-line entry shared by both servers: ``--config``, ``--host``, ``--port``."""

from __future__ import annotations

import argparse
import errno
import importlib
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from serving_core.registry import ModelRegistry
from serving_core.settings import ConfigError, ServerSettings
from serving_core.signals import ShutdownSignals
from serving_core.startup import StartupTimeline

log = logging.getLogger("serving_core.cli")


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log collectors: time, level, logger, message (and the traceback)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {"time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}",
                 "level": record.levelname, "logger": record.name, "message": record.getMessage()}
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(level: str, fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json"
                         else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level.upper(), handlers=[handler])


def run_server(
    prog: str,
    settings_cls: type[ServerSettings],
    build_registry: Callable[[ServerSettings], ModelRegistry[Any]],
    app_factory: str,
    argv: list[str] | None = None,
    signals: ShutdownSignals | None = None,
    started_at: float | None = None,
) -> int:
    """Parse arguments, validate the configuration, start loading, serve until stopped.

    ``app_factory`` ("module:function") is imported only after the models started loading: the
    web stack's imports (FastAPI alone is ~0.5 s) then overlap with reading the weights, most of
    which runs in C with the GIL released.
    """
    t0 = time.perf_counter()
    timeline = StartupTimeline()
    timeline.mark("interpreter", started_at)
    if signals is None:
        signals = ShutdownSignals()
        signals.install()
    parser = argparse.ArgumentParser(prog=prog, description=f"{prog}: serve models over HTTP")
    parser.add_argument("--config", help="YAML configuration file (environment variables override it)")
    parser.add_argument("--host", help=f"bind address (default {settings_cls.model_fields['host'].default})")
    parser.add_argument("--port", type=int, help=f"port (default {settings_cls.default_port})")
    parser.add_argument("--log-level", help="debug, info, warning, error")
    settings_cls.add_cli_arguments(parser)
    args = parser.parse_args(argv)
    overrides = {k: v for k, v in {"host": args.host, "port": args.port, "log_level": args.log_level}.items()
                 if v is not None}
    try:
        settings = settings_cls.load(args.config, **overrides, **settings_cls.cli_overrides(args))
    except ConfigError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format)
    if settings.models_defaulted:
        log.info("no models configured: serving the embedded defaults (%s)", ", ".join(m.name for m in settings.models))
    prefix = settings_cls.model_config.get("env_prefix", "")
    for port, how in ((settings.port, f"--port or {prefix}PORT"), (settings.health_port, f"{prefix}HEALTH_PORT")):
        unavailable = listen_problem(settings.host, port) if port is not None else None
        if unavailable:
            # Checked before any model loads; the one plain line is the last the user sees.
            print(f"{prog} could not start: {unavailable}; choose another port with {how}", file=sys.stderr)
            return 3
    if signals.stopping:
        return signals.exit_code()
    if settings.read_ahead:
        from serving_core import read_ahead

        read_ahead.start(settings.weight_files())
    registry = build_registry(settings)
    timeline.mark("configured")
    code = _serve(settings, registry, app_factory, signals, t0, timeline)
    if code is None:
        # Stopped before uvicorn took over (imports, early loading): stop the loads, exit quietly.
        log.info("stopped during start-up; stopping the model loads")
        registry.close()
        return signals.exit_code()
    return code


def _serve(settings: ServerSettings, registry: ModelRegistry[Any], app_factory: str, signals: ShutdownSignals,
           t0: float, timeline: StartupTimeline) -> int | None:
    """Load, build the app, serve; None when a signal stopped start-up before uvicorn ran."""
    if settings.early_start:
        registry.start_loading()
        timeline.mark("loading_started")
    if signals.stopping:
        return None
    module, _, func = app_factory.partition(":")
    create_app = getattr(importlib.import_module(module), func)
    from serving_core.drain import DrainingServer
    from serving_core.http_server import listening_sockets, raise_open_file_limit, uvicorn_config

    if signals.stopping:
        return None
    app = create_app(settings, registry, timeline)
    timeline.mark("web_stack_ready")
    log.info("web stack imported and app built in %.2f s after start", time.perf_counter() - t0)
    raise_open_file_limit()
    config = uvicorn_config(app, settings)
    watchdog = ShutdownWatchdog(shutdown_bound(settings.shutdown_grace_seconds, settings.shutdown_drain_seconds))
    server = DrainingServer(config, app.state.drain, on_listening=lambda: timeline.mark("listening"),
                            on_signal=watchdog.signalled)
    # Signals that came before uvicorn's own handlers (or come before they are installed) start the
    # watchdog's clock too.
    for sig in signals.received:
        watchdog.signalled(sig)
    signals.on_signal = watchdog.signalled
    signals.attach(server)
    server.run(sockets=listening_sockets(config, settings))
    return signals.exit_code()


# Past the drain's grace: streams' closing events (drain._STREAM_END_SECONDS), uvicorn's cancel of the
# requests left (http_server: timeout_graceful_shutdown), then shutdown_drain_seconds for the model
# calls to stop; the margin covers freeing the models and a loaded machine's scheduling delays.
_SHUTDOWN_STEPS_SECONDS = 2.0 + 1.0
_SHUTDOWN_MARGIN_SECONDS = 5.0


def shutdown_bound(grace_seconds: float, drain_seconds: float) -> float:
    """The longest a shutdown may take after the first SIGTERM/SIGINT, given ``shutdown_grace_seconds``
    and ``shutdown_drain_seconds`` (orchestrators' kill timeouts must exceed it: deploy/)."""
    return grace_seconds + _SHUTDOWN_STEPS_SECONDS + drain_seconds + _SHUTDOWN_MARGIN_SECONDS


class ShutdownWatchdog:
    """Keeps a shutdown within ``seconds`` of the first signal.

    ``registry.close()`` leaves a model whose call did not stop within ``shutdown_drain_seconds``
    unfreed, for the process exit. But the exit waits for that call: the model calls run in the
    event loop's default executor, whose threads ``asyncio.run`` and the interpreter join. On a
    loaded machine a call can run on for minutes (a Whisper window: an encode and up to six
    generates, each many times slower), past any orchestrator's kill timeout. So once the bound has
    passed the process exits without waiting for it (the call is never freed under, only cut by
    the exit), with the exit code the signal asks for.
    """

    _POLL_SECONDS = 0.5

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.signals: list[int] = []
        self._deadline: float | None = None
        threading.Thread(target=self._run, name="shutdown-watchdog", daemon=True).start()

    def signalled(self, sig: int) -> None:
        """Called in the signal handler: records the signal; the first one sets the deadline. Only plain
        assignments here: a lock taken in a signal handler deadlocks when a second signal interrupts it."""
        self.signals.append(sig)
        if self._deadline is None:
            self._deadline = time.monotonic() + self.seconds

    def _run(self) -> None:
        while self._deadline is None or time.monotonic() < self._deadline:
            time.sleep(self._POLL_SECONDS)
        log.error("shutdown not finished %.0f s after the signal (a model call that did not stop); "
                  "exiting without waiting for it", self.seconds)
        for handler in logging.getLogger().handlers:
            handler.flush()
        os._exit(130 if signal.SIGINT in self.signals else 0)


def listen_problem(host: str, port: int) -> str | None:
    """Why the server could not listen on ``host:port`` (e.g. the port is taken), or None."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        # uvicorn sets SO_REUSEADDR too: a port with only TIME_WAIT connections left is free.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return f"port {port} on {host} is already in use"
            return f"cannot listen on {host}:{port} ({exc.strerror})"
    return None
