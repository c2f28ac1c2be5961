"""Exception handlers that give every error, expected or not, the one JSON shape."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serving_core.errors import ServingError, did_you_mean, echo, error_body, in_dialect, scrub_reprs

log = logging.getLogger("serving_core.errors")


def error_response(request: Request, status: int, body: dict[str, Any],
                   headers: Mapping[str, str] | None = None) -> JSONResponse:
    """``body`` (the one shape) as the response, in the error dialect of the request's path, if any."""
    status, body = in_dialect(request.scope, status, body)
    return JSONResponse(body, status_code=status, headers=headers)

# FastAPI's answer when reading the body raised something other than a JSON syntax error.
_FASTAPI_BODY_ERROR = "There was an error parsing the body"
def _json_position(doc: Any, pos: int) -> str:
    if not isinstance(doc, str | bytes):
        return f"character {pos + 1}"
    text = doc if isinstance(doc, str) else doc.decode("utf-8", "replace")
    line = text.count("\n", 0, pos) + 1
    column = pos - (text.rfind("\n", 0, pos) + 1) + 1
    return f"line {line}, column {column}"


def _known_fields(request: Request, loc: tuple[Any, ...]) -> list[str]:
    """The field names the request model accepts at ``loc``'s parent (for "did you mean")."""
    body_field = getattr(request.scope.get("route"), "body_field", None)
    body = getattr(getattr(body_field, "field_info", None), "annotation", None)
    fields = getattr(body, "model_fields", None)
    return list(fields) if fields and len(loc) == 2 else []


def validation_error(request: Request, exc: RequestValidationError) -> tuple[str, str | None]:
    """The message (every problem, each naming its field) and the first field at fault."""
    parts: list[str] = []
    param: str | None = None
    for err in exc.errors():
        raw_loc = tuple(err.get("loc", ()))
        loc = ".".join(str(p) for p in raw_loc if p != "body")
        if err.get("type") == "json_invalid":
            pos = raw_loc[-1] if raw_loc and isinstance(raw_loc[-1], int) else 0
            reason = err.get("ctx", {}).get("error", "invalid JSON")
            parts.append(f"the body is not valid JSON: {reason} at {_json_position(exc.body, pos)}")
            continue
        param = param or loc or None
        if err.get("type") == "extra_forbidden":
            name = str(raw_loc[-1]) if raw_loc else loc
            parts.append(f"{loc}: unknown field{did_you_mean(name, _known_fields(request, raw_loc))}; "
                         "remove it (see /docs for the fields this route takes)")
            continue
        msg = scrub_reprs(str(err.get("msg", "invalid value")))
        parts.append(f"{loc or 'body'}: {echo(msg, 300)}")
    return "; ".join(parts) or "invalid request", param


def body_parse_reason(cause: BaseException | None) -> str:
    """Why a body could not be parsed, in words a client can act on."""
    if isinstance(cause, UnicodeDecodeError):
        return f"the body is not valid UTF-8 (byte {cause.start})"
    if isinstance(cause, RecursionError):
        return "the JSON is nested too deeply"
    if isinstance(cause, ValueError) and "digits" in str(cause):
        return "a number in the JSON has too many digits (at most 4300)"
    if isinstance(cause, ValueError):
        return f"the body is not valid JSON ({cause})"
    if cause is not None:
        return f"the body could not be parsed ({type(cause).__name__}: {echo(scrub_reprs(str(cause)), 200)})"
    return "the body could not be parsed"


class UnhandledErrors:
    """ASGI middleware: an unexpected exception becomes the one-shape 500, logged with its traceback.

    Starlette's own last-resort handler re-raises after answering, and uvicorn then drops the
    connection without ``Connection: close``: a client's next request on that kept-alive
    connection fails too. Answering here, without re-raising, keeps the connection usable.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False
        finished = False

        async def tracking_send(message: Message) -> None:
            nonlocal started, finished
            started = started or message["type"] == "http.response.start"
            finished = finished or (message["type"] == "http.response.body" and not message.get("more_body", False))
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except asyncio.CancelledError:
            # Only the server cancels a whole request task: at shutdown, when the grace period ran
            # out or the event loop closes. A complete response needs nothing more (only cleanup,
            # e.g. closing the upload's temporary file, was cut short); a response not started
            # yet gets a proper 503 instead of uvicorn's bare "Internal Server Error".
            if finished:
                return
            if started:
                raise
            await JSONResponse(
                error_body("shutting_down", "service_unavailable", "the server is shutting down; retry elsewhere"),
                status_code=503, headers={"connection": "close"},
            )(scope, receive, send)
        except Exception:
            log.exception("unhandled error on %s %s", scope.get("method"), scope.get("path"))
            if started:
                raise  # half a response went out: only closing the connection can tell the client
            response = JSONResponse(
                error_body("internal_error", "server_error", "internal server error; see the server log"),
                status_code=500,
            )
            await response(scope, receive, send)


def install_error_handlers(app: FastAPI) -> None:
    """Route every error, expected or not, through the one JSON shape; never leak a traceback."""

    @app.exception_handler(ServingError)
    async def _serving(request: Request, exc: ServingError) -> JSONResponse:
        return error_response(request, exc.status_code, error_body(exc.code, exc.type, exc.message, **exc.extra),
                              exc.headers())

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        message, param = validation_error(request, exc)
        return error_response(request, 422, error_body("validation_error", "invalid_request_error", message,
                                                       param=param))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400 and exc.detail == _FASTAPI_BODY_ERROR:
            return error_response(request, 422, error_body("validation_error", "invalid_request_error",
                                                           body_parse_reason(exc.__cause__)))
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        message = str(exc.detail)
        if exc.status_code in (404, 405) and message in ("Not Found", "Method Not Allowed"):
            what = "no route" if exc.status_code == 404 else "method not allowed for"
            message = f"{what} {request.method} {echo(request.url.path, 100)}; the routes are listed at /docs " \
                      "(and /openapi.json)"
        return error_response(request, exc.status_code, error_body(code, "invalid_request_error", message),
                              getattr(exc, "headers", None))

    app.add_middleware(UnhandledErrors)
