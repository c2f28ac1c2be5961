"""Request body size limit, enforced while the body streams in (413 before it is all read)."""

from __future__ import annotations

import asyncio
import contextlib
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serving_core.errors import error_body, json_messages


class _TooLarge(Exception):
    pass


class BodySizeLimit:
    """ASGI middleware: refuse bodies above ``max_bytes`` with 413.

    A declared ``Content-Length`` above the limit is refused before any byte is read; a chunked
    body is counted as it arrives and cut off as soon as it passes the limit.

    Closing a connection whose client is still sending makes the kernel reset it, and most
    clients then lose the 413 they were about to read (half the time for a 1 GiB upload). So,
    like nginx's lingering close, the rest of a refused body is read and discarded before the
    response ends: at most ``max_drain_bytes`` and ``drain_seconds``, and not at all for a
    client that waits for ``100 Continue`` (it never sends the body).
    """

    def __init__(self, app: ASGIApp, max_bytes: int, max_drain_bytes: int = 1024**3,
                 drain_seconds: float = 30.0) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_drain_bytes = max_drain_bytes
        self.drain_seconds = drain_seconds

    async def _drain(self, receive: Receive, declared: int | None, already: int) -> None:
        if declared is not None and declared - already > self.max_drain_bytes:
            return
        deadline = time.monotonic() + self.drain_seconds
        drained = 0
        while drained <= self.max_drain_bytes:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            try:
                message = await asyncio.wait_for(receive(), remaining)
            except asyncio.TimeoutError:
                return
            if message["type"] != "http.request":
                return
            drained += len(message.get("body", b""))
            if not message.get("more_body", False):
                return

    async def _reject(self, scope: Scope, receive: Receive, send: Send, declared: int | None, already: int,
                      body_done: bool) -> None:
        mb = self.max_bytes / (1024 * 1024)
        start, body = json_messages(413, error_body(
            "payload_too_large", "invalid_request_error",
            f"request body is larger than the limit of {self.max_bytes} bytes ({mb:g} MiB)",
        ), ((b"connection", b"close"),), scope)
        await send(start)
        expects_continue = any(n == b"expect" and v.lower() == b"100-continue" for n, v in scope.get("headers", []))
        if not body_done and not expects_continue:
            await self._drain(receive, declared, already)
        await send(body)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared: int | None = None
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                with contextlib.suppress(ValueError):
                    declared = int(value)
        if declared is not None and declared > self.max_bytes:
            await self._reject(scope, receive, send, declared, 0, body_done=False)
            return
        received = 0
        exceeded = False
        body_done = False
        started = False

        async def counting_receive() -> Message:
            nonlocal received, exceeded, body_done
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                body_done = not message.get("more_body", False)
                if received > self.max_bytes:
                    exceeded = True
                    raise _TooLarge
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if exceeded:
                return  # the app is answering an aborted body; our 413 replaces it
            started = started or message["type"] == "http.response.start"
            await send(message)

        with contextlib.suppress(_TooLarge):
            await self.app(scope, counting_receive, guarded_send)
        if exceeded and not started:
            await self._reject(scope, receive, send, declared, received, body_done)
