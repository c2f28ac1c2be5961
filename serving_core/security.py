"""Who may call the server: an optional API key, CORS from config, trusted Host headers."""

from __future__ import annotations

import hmac

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from serving_core.errors import error_body, json_messages
from serving_core.settings import ServerSettings

# Always public: probes must work without credentials, and the API description is not a secret.
PUBLIC_PATHS = frozenset({"/", "/health", "/health/live", "/health/ready", "/health/startup", "/health/events", "/docs",
                          "/docs/oauth2-redirect", "/redoc", "/openapi.json"})


def presented_key(scope: Scope) -> bytes | None:
    """The key a request carries: ``Authorization: Bearer KEY`` or ``X-API-Key: KEY``."""
    headers: list[tuple[bytes, bytes]] = scope.get("headers", [])
    for name, value in headers:
        if name == b"authorization" and value[:7].lower() == b"bearer ":
            return value[7:].strip()
        if name == b"x-api-key":
            return value.strip()
    return None


class ApiKeyAuth:
    """ASGI middleware: 401 (OpenAI's error shape) unless the request carries the API key.

    The comparison is constant-time (``hmac.compare_digest``). CORS preflights (``OPTIONS`` with
    ``Access-Control-Request-Method``) pass: browsers never send credentials with them.
    """

    def __init__(self, app: ASGIApp, api_key: str, protect_metrics: bool) -> None:
        self.app = app
        self._key = api_key.encode()
        self._public = PUBLIC_PATHS if protect_metrics else PUBLIC_PATHS | {"/metrics"}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self._public or _is_preflight(scope):
            await self.app(scope, receive, send)
            return
        key = presented_key(scope)
        if key is not None and hmac.compare_digest(key, self._key):
            await self.app(scope, receive, send)
            return
        message = ("missing API key: send `Authorization: Bearer KEY` or `X-API-Key: KEY`" if key is None
                   else "incorrect API key")
        for reply in json_messages(401, error_body("invalid_api_key", "invalid_request_error", message),
                                   ((b"www-authenticate", b"Bearer"),), scope):
            await send(reply)


class CorsOff:
    """With CORS off, a browser's preflight gets a clear 403 instead of a 405 from the route."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _is_preflight(scope):
            await self.app(scope, receive, send)
            return
        for reply in json_messages(403, error_body("cors_disabled", "invalid_request_error", "cross-origin requests "
                                                   "are not enabled on this server; set cors_origins")):
            await send(reply)


class TrustedHosts:
    """ASGI middleware against DNS rebinding: 400 (the JSON error shape) unless the ``Host`` header
    names an allowed host. Patterns as Starlette's ``TrustedHostMiddleware``: exact, or ``*.domain``."""

    def __init__(self, app: ASGIApp, allowed: list[str]) -> None:
        self.app = app
        self.allowed = [a.lower() for a in allowed]

    def _trusted(self, host: str) -> bool:
        return any(host == a or (a.startswith("*.") and host.endswith(a[1:])) for a in self.allowed)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        raw = next((v for k, v in scope.get("headers", ()) if k == b"host"), b"").decode("latin-1")
        if self._trusted(host_of(raw)):
            await self.app(scope, receive, send)
            return
        for reply in json_messages(400, error_body("untrusted_host", "invalid_request_error",
                                                   "the Host header names a host this server does not serve; "
                                                   "see the trusted_hosts setting")):
            await send(reply)


def host_of(header: str) -> str:
    """The host name of a ``Host`` header, without the port (``[::1]:8001`` → ``::1``)."""
    header = header.strip().lower()
    if header.startswith("["):
        end = header.find("]")
        return header[1:end] if end > 0 else header
    return header.rsplit(":", 1)[0] if ":" in header else header


def _is_preflight(scope: Scope) -> bool:
    if scope.get("method") != "OPTIONS":
        return False
    names = {name for name, _ in scope.get("headers", ())}
    return b"origin" in names and b"access-control-request-method" in names


def install_security(app: FastAPI, settings: ServerSettings) -> None:
    """Add the API key check, CORS and trusted hosts (outermost last: hosts → CORS → key)."""
    if settings.api_key is not None:
        app.add_middleware(ApiKeyAuth, api_key=settings.api_key.get_secret_value(),
                           protect_metrics=settings.metrics_require_api_key)
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins,
                           allow_credentials=settings.cors_allow_credentials, allow_methods=["GET", "POST"],
                           allow_headers=["authorization", "x-api-key", "content-type"])
    else:
        app.add_middleware(CorsOff)
    if settings.trusted_hosts != ["*"]:
        app.add_middleware(TrustedHosts, allowed=settings.trusted_hosts)
