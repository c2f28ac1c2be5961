"""The HTTP server both model servers run: uvicorn, configured against slow and hostile clients.

Uvicorn bounds idle keep-alive connections, header size and concurrency, but it has no timeout
for a request head that never completes: a client that connects and sends nothing, or sends its
headers one byte a second (slowloris), holds a connection and a file descriptor forever. The
protocol below adds that timeout; the rest is uvicorn's own options.
"""

from __future__ import annotations

import asyncio
import logging
import resource
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from serving_core.settings import ServerSettings

log = logging.getLogger("serving_core.http")

_REQUEST_TIMEOUT = (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
                    b"connection: close\r\ncontent-length: 44\r\n\r\nrequest head not received in time; closing\r\n")


class HeadTimeoutH11Protocol(H11Protocol):
    """Uvicorn's h11 protocol plus a deadline for each request head (request line and headers).

    The clock starts when the connection opens (for its first request) or with the first byte of
    a later request on a kept-alive connection; trickling bytes does not reset it. When it runs
    out, the client gets 408 and the connection is closed.
    """

    head_timeout: float = 10.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head_timer: asyncio.TimerHandle | None = None
        self._arm_head_timer()

    def data_received(self, data: bytes) -> None:
        if self._head_timer is None and self.conn.their_state is h11.IDLE:
            self._arm_head_timer()
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:
            self._disarm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_timer()
        super().connection_lost(exc)

    def _arm_head_timer(self) -> None:
        self._head_timer = self.loop.call_later(self.head_timeout, self._on_head_timeout)

    def _disarm_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _on_head_timeout(self) -> None:
        self._head_timer = None
        if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
            return
        log.info("closing a connection from %s: no complete request head after %.0f s",
                 f"{self.client[0]}:{self.client[1]}" if self.client else "?", self.head_timeout)
        if self.conn.our_state is h11.IDLE:
            self.transport.write(_REQUEST_TIMEOUT)
        self.transport.close()


def raise_open_file_limit() -> None:
    """Raise the soft open-file limit to the hard one: each connection costs a descriptor, and the
    usual soft limit (1024) would stop the server accepting long before ``max_connections``."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = 1 << 20 if hard == resource.RLIM_INFINITY else hard
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            log.debug("could not raise the open-file limit from %d", soft)


def uvicorn_config(app: Any, settings: ServerSettings) -> uvicorn.Config:
    """Uvicorn's configuration for ``app`` with the settings' connection limits and timeouts."""
    protocol = type("HeadTimeoutH11Protocol", (HeadTimeoutH11Protocol,),
                    {"head_timeout": settings.header_timeout_seconds})
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        log_config=None,  # uvicorn's loggers go to the root handler: one line format for everything
        access_log=False,  # serving_core.metrics writes the access line, with the model and duration
        http=protocol,
        timeout_keep_alive=max(1, round(settings.keep_alive_seconds)),
        limit_concurrency=settings.max_connections,
        h11_max_incomplete_event_size=settings.max_header_bytes,
        # The drain (serving_core.drain) already gave running requests the grace; whatever still
        # runs after it is cancelled promptly.
        timeout_graceful_shutdown=1,
    )
