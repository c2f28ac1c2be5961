"""Graceful drain: on SIGTERM/SIGINT keep serving what is in flight, refuse what is new, then stop.

Uvicorn alone closes its listening socket at the first signal: a load balancer still sending traffic
gets connection errors, and a probe cannot see the pod going away. Here the first signal starts a
drain instead: ``/health/ready`` answers 503 at once, new requests get 503 ``shutting_down`` with
``Retry-After``, requests and streams already running finish — for up to ``shutdown_grace_seconds``
— and only then is uvicorn told to exit (which frees the models). A second signal stops at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send

from serving_core.errors import error_body, send_json

log = logging.getLogger("serving_core.drain")

# Probes and scrapes are not work to wait for, and stay answered while draining.
_NOT_WORK = frozenset({"/health", "/health/live", "/metrics"})
# After the grace, how long streams get to send their closing events before the server stops.
_STREAM_END_SECONDS = 2.0


class Drain:
    """The drain state of one app: requests in flight, and whether new ones are still taken."""

    def __init__(self, grace_seconds: float) -> None:
        self.grace_seconds = grace_seconds
        self.in_flight = 0
        self.draining = False
        self._idle = asyncio.Event()
        self._idle.set()
        # When the grace is over (or a second signal came), streams still running end now, each
        # with an error event and its proper end, before the server stops. One event per stream,
        # made on the stream's own event loop (an Event binds to the loop that first waits on it).
        self.streams_ended = False
        self._stream_stops: set[asyncio.Event] = set()

    def begin(self) -> None:
        if not self.draining:
            self.draining = True
            log.info("draining: %d request(s) in flight get up to %.0f s to finish; new requests get 503 "
                     "(signal again to stop now)", self.in_flight, self.grace_seconds)

    async def wait_idle(self, seconds: float | None = None) -> bool:
        """Wait until nothing is in flight, at most ``seconds`` (default: the grace); False if
        requests were still running."""
        try:
            await asyncio.wait_for(self._idle.wait(), self.grace_seconds if seconds is None else seconds)
            return True
        except TimeoutError:
            return False

    def stream_stop(self) -> asyncio.Event:
        """An event a running stream waits on: set when streams must end. Hand it back with
        ``forget_stream``."""
        stop = asyncio.Event()
        if self.streams_ended:
            stop.set()
        self._stream_stops.add(stop)
        return stop

    def forget_stream(self, stop: asyncio.Event) -> None:
        self._stream_stops.discard(stop)

    def end_streams(self) -> None:
        """Tell every running stream to end (on the event loop's thread)."""
        self.streams_ended = True
        for stop in list(self._stream_stops):
            stop.set()

    def _enter(self) -> None:
        self.in_flight += 1
        self._idle.clear()

    def _leave(self) -> None:
        self.in_flight -= 1
        if self.in_flight == 0:
            self._idle.set()


class DrainGate:
    """ASGI middleware: counts the requests in flight; while draining refuses new ones (503 +
    ``Retry-After``) and answers ``/health/ready`` with 503."""

    def __init__(self, app: ASGIApp, drain: Drain) -> None:
        self.app = app
        self.drain = drain

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path in _NOT_WORK:
            await self.app(scope, receive, send)
            return
        if self.drain.draining:
            if path == "/health/ready":
                await send_json(send, 503, {"status": "draining", "message": "the server is shutting down"})
            else:
                await send_json(send, 503, error_body("shutting_down", "server_error",
                                                      "the server is shutting down; retry on another instance"),
                                retry_after=5, scope=scope)
            return
        self.drain._enter()
        try:
            await self.app(scope, receive, send)
        finally:
            self.drain._leave()


class DrainingServer(uvicorn.Server):
    """A uvicorn server whose first SIGTERM/SIGINT drains (see the module docstring)."""

    def __init__(self, config: uvicorn.Config, drain: Drain, on_listening: Callable[[], None] | None = None,
                 on_signal: Callable[[int], None] | None = None) -> None:
        super().__init__(config)
        self.drain = drain
        self._on_listening = on_listening
        self._on_signal = on_signal  # called (in the signal handler) with every SIGTERM/SIGINT
        self._loop: asyncio.AbstractEventLoop | None = None
        self._drainer: asyncio.Task[None] | None = None  # referenced, so it is not garbage-collected

    async def startup(self, sockets: Any = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().startup(sockets)  # the lifespan first, then the listening socket
        if self._on_listening is not None and self.started:
            self._on_listening()

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._on_signal is not None:
            self._on_signal(sig)
        if self.drain.draining or self._loop is None or not self.started:
            # A second signal, or not serving yet: stop now — streams still get their proper end
            # (uvicorn gives running requests a second before it cancels them).
            if self._loop is not None:
                self._loop.call_soon_threadsafe(self.drain.end_streams)
            super().handle_exit(sig, frame)
            return
        self._captured_signals.append(sig)
        # A signal handler must not touch the event loop's data; call_soon_threadsafe is safe here.
        self._loop.call_soon_threadsafe(self._start_drain)

    def _start_drain(self) -> None:
        self.drain.begin()
        self._drainer = asyncio.ensure_future(self._exit_when_drained())

    async def _exit_when_drained(self) -> None:
        t0 = time.monotonic()
        if await self.drain.wait_idle():
            log.info("drained in %.1f s", time.monotonic() - t0)
        else:
            log.warning("%d request(s) still running after the %.0f s grace; stopping them",
                        self.drain.in_flight, self.drain.grace_seconds)
            self.drain.end_streams()
            await self.drain.wait_idle(_STREAM_END_SECONDS)
        self.should_exit = True
