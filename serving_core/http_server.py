"""The HTTP server both model servers run: uvicorn, configured against slow and hostile clients.

Uvicorn bounds connections with a plain cap (past it, every request — health probes included —
gets a plain-text 503), and has no deadline for a request head or body that never completes, no
size check on a head that arrives in one read, and closes a connection whose client half-closed
it before answering. The protocol below replaces those parts (the policy itself lives in
``serving_core.connections``):

- a deadline for each request head (slowloris), and one for each request body that grows with
  the bytes received (a minimum rate: a body trickled at a byte per second is cut, a large upload
  on a slow link is not);
- the connection cap decides which connection is dropped to make room, not which client is
  refused, and health probes are answered whatever the count;
- idle deadlines shrink as the count approaches the cap;
- the request head's size is checked however it arrives (431);
- a client that half-closes (``shutdown(SHUT_WR)``) after its request still gets the answer;
- every connection the server closes or refuses is counted, by reason, on ``/metrics``;
- optionally (``health_port``), a second listener that serves only the health routes and
  ``/metrics``, outside the cap and never dropped: what an orchestrator's probes should use, so
  that a flood of the public port cannot get a healthy server restarted (Triton does the same).
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import fcntl
import json
import logging
import re
import resource
import socket
import termios
import time
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from serving_core.connections import (
    ALWAYS_ANSWERED,
    SLOW_BODY_GRACE_SECONDS,
    STALLED_BODY_SECONDS,
    ConnectionBook,
    ConnectionPolicy,
    Phase,
)
from serving_core.errors import error_body, error_type, send_json
from serving_core.settings import ServerSettings

log = logging.getLogger("serving_core.http")

_HEAD_END = re.compile(rb"\n\r?\n")
# After a FIN, when to look for the reset a closed client answers data with (loopback: at once;
# across networks: a round trip or a few).
_RESET_CHECKS = (0.05, 0.3, 1.0, 3.0)
_TCP_CLOSE = 7  # tcp_info.tcpi_state (linux/tcp_states.h)
RETRY_AFTER_SECONDS = 2


class GuardedH11Protocol(H11Protocol):
    """Uvicorn's h11 protocol, kept by a ``ConnectionBook`` (see the module docstring).

    Head clock: starts when the connection opens (for its first request) or with the first byte
    of a later request on a kept-alive connection; trickling bytes does not reset it. Body clock:
    starts when the head is complete; the body may take ``body_timeout`` plus a second per
    ``min_body_rate`` bytes received; while the application is not reading (uvicorn paused the
    socket) the client is not to blame and the clock starts again.
    """

    book: ConnectionBook  # set per server by uvicorn_config
    health_port: int | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.app = self._gated(self.app)

    def _gated(self, app: Any) -> Any:
        book = self.book
        protocol = self

        async def gated(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] == "http":
                if protocol._on_health_port:
                    if scope["path"] not in ALWAYS_ANSWERED:
                        await _send_error(send, 404, "not_found", "this port serves only /health, /health/live, "
                                          "/health/ready, /health/startup and /metrics; use the main port")
                        return
                elif book.refuses(scope["path"]):
                    await _send_error(send, 503, "too_many_connections", "the server has too many connections "
                                      "with requests running; retry shortly", retry_after=RETRY_AFTER_SECONDS)
                    return
            await app(scope, receive, send)

        return gated

    # -- connection life -----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._phase = Phase.AWAITING_FIRST_HEAD
        self._served = 0
        self._body_started = self._body_last_byte = 0.0
        self._body_bytes = 0
        # The health listener's connections are outside the book: never counted, never dropped.
        self._on_health_port = self.health_port is not None and self.server is not None \
            and self.server[1] == self.health_port
        if not self._on_health_port and not self.book.opened(self):
            # Past the cap and its allowance, with nothing to drop: say so, rather than a reset.
            self._write_and_close(503, "Service Unavailable", "too_many_connections",
                                  "the server has too many open connections; retry shortly", RETRY_AFTER_SECONDS)
            return
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self.book.forget(self)
        self._disarm_head_timer()
        self._disarm_body_timer()
        super().connection_lost(exc)

    def eof_received(self) -> bool | None:  # type: ignore[override]  # asyncio.Protocol allows a bool
        """The client sent FIN. After a complete request, that is either a half-close (``shutdown(
        SHUT_WR)``: it still reads the answer) or a hang-up (``close()``: nobody reads it, and its
        generation should stop at once). TCP shows both the same way until data is sent: a closed
        socket answers data with a reset. So the connection stays open for the answer, and an
        interim ``100 Continue`` (which every HTTP/1.1 client must accept before the final answer)
        asks the question; a reset within a few round trips means the client is gone. Idle, or with
        a request that can no longer be completed, EOF is a hang-up."""
        cycle = self.cycle
        if cycle is None or cycle.response_complete or self.conn.their_state is not h11.DONE:
            return None
        cycle.keep_alive = False
        if not cycle.response_started:
            with contextlib.suppress(h11.LocalProtocolError):
                self.transport.write(self.conn.send(h11.InformationalResponse(status_code=100, headers=[],
                                                                              reason=b"Continue")))
            for delay in _RESET_CHECKS:
                self.loop.call_later(delay, self._close_if_reset)
        # (A stream's next chunk gets the reset as a write error, which closes the transport.)
        return True

    def _close_if_reset(self) -> None:
        if self.transport.is_closing():
            return
        sock = self.transport.get_extra_info("socket")
        try:
            state = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)[0] if sock is not None else None
        except OSError:
            state = _TCP_CLOSE
        if state == _TCP_CLOSE:
            log.info("client %s closed the connection before its answer; stopping the request", self._peer())
            self.transport.close()  # -> connection_lost: the request sees the disconnect

    def data_received(self, data: bytes) -> None:
        if self._phase is Phase.BODY:
            self._body_bytes += len(data)
            self._body_last_byte = time.monotonic()
        if self._head_timer is None and self.conn.their_state is h11.IDLE:
            self._arm_head_timer()
        super().data_received(data)

    def handle_events(self) -> None:
        if self.conn.their_state is h11.IDLE and self._head_too_large():
            limit = self.book.policy.max_header_bytes
            self.book.closed["header_too_large"] += 1
            self.book.forget(self)
            self._write_and_close(431, "Request Header Fields Too Large", "header_too_large",
                                  f"the request line and headers are larger than the limit of {limit} bytes; "
                                  "send fewer or shorter headers")
            return
        super().handle_events()
        self._sync_phase()

    def on_response_complete(self) -> None:
        self._served += 1
        # uvicorn arms the keep-alive timer with this (call_later takes a float)
        self.timeout_keep_alive = self.book.scaled(self.book.policy.keep_alive)  # type: ignore[assignment]
        super().on_response_complete()
        if not self.transport.is_closing():
            self._sync_phase()

    def timeout_keep_alive_handler(self) -> None:
        self.book.closed["keep_alive_expired"] += 1
        super().timeout_keep_alive_handler()

    def send_400_response(self, msg: str) -> None:
        # uvicorn's is plain text; every other error here has the one JSON shape.
        self.book.closed["invalid_http"] += 1
        self.book.forget(self)
        self._write_and_close(400, "Bad Request", "invalid_http",
                              "the request is not valid HTTP/1.1 (request line or headers malformed)")

    # -- phases --------------------------------------------------------------------------------

    def _sync_phase(self) -> None:
        their = self.conn.their_state
        if their is h11.IDLE:
            phase = Phase.IDLE if self._served else Phase.AWAITING_FIRST_HEAD
        elif their is h11.SEND_BODY:
            phase = Phase.BODY
        else:
            phase = Phase.BUSY
        if phase is self._phase:
            return
        if phase not in (Phase.IDLE, Phase.AWAITING_FIRST_HEAD):
            self._disarm_head_timer()
        if self._phase is Phase.BODY:
            self._disarm_body_timer()
        if phase is Phase.BODY:
            self._body_started = self._body_last_byte = time.monotonic()
            self._body_bytes = 0
            self._arm_body_timer(self.book.policy.body_timeout)
        self._phase = phase
        self.book.move(self, phase)

    # -- what the book asks of a connection ----------------------------------------------------

    def body_stalled(self, now: float, min_rate: float) -> bool:
        if self._phase is not Phase.BODY or self.flow.read_paused:  # paused: the application is not reading
            return False
        elapsed = now - self._body_started
        if now - self._body_last_byte >= STALLED_BODY_SECONDS:
            return True
        return elapsed >= SLOW_BODY_GRACE_SECONDS and self._body_bytes / elapsed < min_rate

    def has_unread_data(self) -> bool:
        sock = self.transport.get_extra_info("socket")
        if sock is None:
            return False
        pending = array.array("i", [0])
        try:
            fcntl.ioctl(sock.fileno(), termios.FIONREAD, pending)
        except OSError:
            return False
        return pending[0] > 0

    def drop(self, reason: str) -> None:
        """Closed to make room for a new connection (``ConnectionBook`` chose this one)."""
        log.debug("dropping a connection from %s to make room (%s)", self._peer(), reason)
        if self._phase is Phase.BODY:
            self._write_and_close(408, "Request Timeout", "body_too_slow",
                                  "the request body arrived too slowly while the server was short of "
                                  "connections; send it faster or retry")
        elif self._phase is Phase.AWAITING_FIRST_HEAD:
            self._write_and_close(503, "Service Unavailable", "too_many_connections",
                                  "the server is short of connections and this one had not sent a request; "
                                  "retry shortly", RETRY_AFTER_SECONDS)
        else:  # a kept-alive connection between requests: close as a keep-alive timeout would
            self._write_and_close(None)

    # -- timers --------------------------------------------------------------------------------

    def _arm_head_timer(self) -> None:
        timeout = self.book.scaled(self.book.policy.header_timeout)
        self._head_timer = self.loop.call_later(timeout, self._on_head_timeout, timeout)

    def _disarm_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _on_head_timeout(self, timeout: float) -> None:
        self._head_timer = None
        if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
            return
        log.info("closing a connection from %s: no complete request head after %.1f s", self._peer(), timeout)
        self.book.closed["header_timeout"] += 1
        self.book.forget(self)
        if self.conn.our_state is h11.IDLE:
            self._write_and_close(408, "Request Timeout", "request_timeout",
                                  "request head not received in time; closing")
        else:
            self._write_and_close(None)

    def _arm_body_timer(self, delay: float) -> None:
        self._body_timer = self.loop.call_later(max(0.05, delay), self._on_body_timer)

    def _disarm_body_timer(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    def _on_body_timer(self) -> None:
        self._body_timer = None
        if self._phase is not Phase.BODY or self.transport.is_closing():
            return
        now = time.monotonic()
        if self.flow.read_paused:  # the application is not reading: not the client's fault
            self._body_started = self._body_last_byte = now
            self._body_bytes = 0
            self._arm_body_timer(self.book.policy.body_timeout)
            return
        allowed = self.book.body_deadline(self._body_bytes)
        elapsed = now - self._body_started
        if elapsed < allowed:
            self._arm_body_timer(allowed - elapsed)
            return
        log.info("closing a connection from %s: request body too slow (%d bytes in %.1f s)", self._peer(),
                 self._body_bytes, elapsed)
        self.book.closed["body_timeout"] += 1
        self.book.forget(self)
        self._write_and_close(408, "Request Timeout", "body_timeout",
                              f"the request body arrived too slowly ({self._body_bytes} bytes in {elapsed:.0f} s; "
                              f"at least {self.book.policy.min_body_rate:g} bytes/s after the first "
                              f"{self.book.policy.body_timeout:g} s)")

    # -- helpers -------------------------------------------------------------------------------

    def _head_too_large(self) -> bool:
        limit = self.book.policy.max_header_bytes
        buffer = getattr(self.conn, "_receive_buffer", None)  # h11's; its len() is O(1)
        if buffer is not None and len(buffer) <= limit:
            return False
        data = self.conn.trailing_data[0]  # a copy: only taken past the limit
        end = _HEAD_END.search(data, 0, limit + 3)
        return (end.end() if end else len(data)) > limit

    def _write_and_close(self, status: int | None, reason: str = "", code: str = "", message: str = "",
                         retry_after: int | None = None) -> None:
        """Answer (unless ``status`` is None and nothing is owed) and close; a request still running
        on this connection sees a disconnect and can send nothing after this answer."""
        self._disarm_head_timer()
        self._disarm_body_timer()
        if self.transport.is_closing():
            return
        cycle = self.cycle  # between requests: the last request's, long answered
        if cycle is not None and self._phase in (Phase.BODY, Phase.BUSY) and cycle.response_started:
            status = None  # this request has (part of) its answer already: closing is the only signal left
        if cycle is not None and not cycle.response_complete:
            cycle.disconnected = True
            cycle.message_event.set()
        if status is not None:
            self.transport.write(_raw_error_response(status, reason, code, message, retry_after))
        self.transport.close()

    def _peer(self) -> str:
        return f"{self.client[0]}:{self.client[1]}" if self.client else "?"


async def _send_error(send: Any, status: int, code: str, message: str, retry_after: int | None = None) -> None:
    await send_json(send, status, error_body(code, error_type(status), message), retry_after)


def _raw_error_response(status: int, reason: str, code: str, message: str, retry_after: int | None = None) -> bytes:
    """A complete HTTP/1.1 response in the one error shape, written straight to the socket (outside any
    ASGI request, or cutting one short): 400, 408, 431, 503."""
    body = json.dumps(error_body(code, error_type(status), message)).encode()
    head = [f"HTTP/1.1 {status} {reason}", "content-type: application/json", f"content-length: {len(body)}",
            "connection: close"]
    if retry_after is not None:
        head.append(f"retry-after: {retry_after}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


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


# Descriptors kept for everything but client connections: model files, logs, temporary uploads.
_OTHER_FILES = 128


def connection_policy(settings: ServerSettings) -> ConnectionPolicy:
    """The settings' connection limits; ``max_connections`` cut to what the open-file limit allows
    (a cap the process cannot reach would end in ``accept()`` failing instead of dropping)."""
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    cap = settings.max_connections
    if soft != resource.RLIM_INFINITY:
        room = max(1, int((soft - _OTHER_FILES) / 1.1))  # the cap's overflow allowance needs ~10 % more
        if cap > room:
            log.warning("max_connections %d is more than the open-file limit (%d) allows; using %d (raise the "
                        "limit with ulimit -n or the container's nofile)", cap, soft, room)
            cap = room
    return ConnectionPolicy(
        max_connections=cap,
        header_timeout=settings.header_timeout_seconds,
        keep_alive=settings.keep_alive_seconds,
        body_timeout=settings.body_timeout_seconds,
        min_body_rate=settings.min_body_bytes_per_second,
        max_header_bytes=settings.max_header_bytes,
    )


def listening_sockets(config: uvicorn.Config, settings: ServerSettings) -> list[socket.socket] | None:
    """The sockets to serve when a health listener is configured (else None: uvicorn binds its own)."""
    if settings.health_port is None:
        return None
    health = socket.socket(socket.AF_INET6 if ":" in settings.host else socket.AF_INET, socket.SOCK_STREAM)
    health.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    health.bind((settings.host, settings.health_port))
    health.set_inheritable(True)
    log.info("health and metrics also on http://%s:%d (outside the connection limit)", settings.host,
             settings.health_port)
    return [config.bind_socket(), health]


def uvicorn_config(app: Any, settings: ServerSettings) -> uvicorn.Config:
    """Uvicorn's configuration for ``app`` with the settings' connection limits and timeouts; the
    connection book is published on ``app.state.connections`` (and on /metrics)."""
    book = ConnectionBook(connection_policy(settings))
    state = getattr(app, "state", None)
    if state is not None:
        state.connections = book
        metrics = getattr(state, "metrics", None)
        if metrics is not None:
            metrics.watch_connections(book)
    protocol = type("GuardedH11Protocol", (GuardedH11Protocol,),
                    {"book": book, "health_port": settings.health_port})
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        log_config=None,  # uvicorn's loggers go to the root handler: one line format for everything
        access_log=False,  # serving_core.metrics writes the access line, with the model and duration
        http=protocol,
        timeout_keep_alive=max(1, round(settings.keep_alive_seconds)),
        limit_concurrency=None,  # the connection book enforces max_connections (see above)
        # h11 refuses longer incomplete heads by itself; complete ones are checked by the protocol.
        h11_max_incomplete_event_size=settings.max_header_bytes + 1024,
        # The drain (serving_core.drain) already gave running requests the grace; whatever still
        # runs after it is cancelled promptly.
        timeout_graceful_shutdown=1,
    )
