"""Typed serving errors and the one JSON error shape: ``{"error": {"code", "type", "message"}}``.

Kept free of web-framework imports so that model loading can start before FastAPI is imported.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import BaseModel, Field


class PermanentLoadError(Exception):
    """A load failure that retrying cannot fix (missing file, unknown backend, bad option)."""


class ServingError(Exception):
    """An error with an HTTP status, a stable code and a message meant for the client."""

    status_code = 500
    code = "internal_error"
    type = "server_error"

    def __init__(self, message: str, *, retry_after: float | None = None, **extra: Any) -> None:
        message = scrub_reprs(message)
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after
        self.extra = extra

    def headers(self) -> dict[str, str]:
        if self.retry_after is None:
            return {}
        return {"Retry-After": str(max(1, round(self.retry_after)))}


class BadRequest(ServingError):
    status_code = 400
    code = "invalid_request"
    type = "invalid_request_error"


class ModelNotFound(ServingError):
    status_code = 404
    code = "model_not_found"
    type = "invalid_request_error"


class PayloadTooLarge(ServingError):
    status_code = 413
    code = "payload_too_large"
    type = "invalid_request_error"


class UnsupportedMediaType(ServingError):
    status_code = 415
    code = "unsupported_media_type"
    type = "invalid_request_error"


class UnprocessableInput(ServingError):
    status_code = 422
    code = "unprocessable_input"
    type = "invalid_request_error"


class Overloaded(ServingError):
    status_code = 429
    code = "overloaded"
    type = "rate_limit_error"


class ModelLoading(ServingError):
    status_code = 503
    code = "model_loading"
    type = "service_unavailable"


class ModelFailed(ServingError):
    status_code = 503
    code = "model_failed"
    type = "service_unavailable"


class ModelInUse(ServingError):
    """An unload refused while requests hold the model."""

    status_code = 409
    code = "model_in_use"
    type = "invalid_request_error"


class LoadInProgress(ServingError):
    """An unload refused while the model is loading (it would end ready anyway)."""

    status_code = 409
    code = "model_loading"
    type = "invalid_request_error"


class ServerShuttingDown(ServingError):
    status_code = 503
    code = "shutting_down"
    type = "service_unavailable"


class ErrorResponse(BaseModel):
    """The body of every error response."""

    class Detail(BaseModel):
        code: str
        type: str
        message: str
        param: str | None = Field(default=None, description="the request parameter at fault, when one is")

    error: Detail


def error_responses(extra: dict[int, str] | None = None) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for a model route: the statuses every such route can answer, plus ``extra``."""
    described = {
        404: "unknown model; the message lists the available ones",
        422: "invalid request (the message names the field)",
        429: "model busy and its queue full; see Retry-After",
        503: "model still loading (Retry-After) or failed (reason given)",
        **(extra or {}),
    }
    return {code: {"description": text, "model": ErrorResponse} for code, text in sorted(described.items())}


ECHO_LIMIT = 64
# Object reprs ("<tempfile.SpooledTemporaryFile object at 0x7f…>") say nothing to a client.
_OBJECT_REPR = re.compile(r"<[\w.]+ object at 0x[0-9a-fA-F]+>")


def scrub_reprs(text: str) -> str:
    """``text`` without Python object reprs (libraries quote them in their messages)."""
    return _OBJECT_REPR.sub("the upload", text)

# An absolute or home-relative POSIX path with at least one directory part; group 1 is its last part.
_PATH = re.compile(r"(?<![\w.~/:-])(?:~/|/)(?:[^\s/'\"`,;()<>]+/)+([^\s/'\"`,;()<>]+)/?")


def hide_paths(text: str) -> str:
    """``text`` with every file-system path cut to its last part: clients learn which file, not where
    the server keeps it (the full text goes to the operator's log)."""
    return _PATH.sub(lambda m: m.group(1), text)



def echo(value: object, limit: int = ECHO_LIMIT) -> str:
    """A client-supplied value, quoted back in a message: cut to ``limit`` characters, never a repr."""
    text = str(value)
    if len(text) > limit:
        text = f"{text[:limit]}… ({len(text)} characters)"
    return text


def did_you_mean(name: str, known: Any) -> str:
    """`` (did you mean 'x'?)`` when a known name is close to ``name``, else ''."""
    import difflib

    close = difflib.get_close_matches(name, [str(k) for k in known], n=1, cutoff=0.7)
    return f" (did you mean '{close[0]}'?)" if close else ""


def error_body(code: str, type_: str, message: str, **extra: Any) -> dict[str, Any]:
    """The body every error response carries."""
    return {"error": {"code": code, "type": type_, "message": message, "param": extra.pop("param", None), **extra}}


ErrorDialect = Callable[[int, dict[str, Any]], tuple[int, dict[str, Any]]]
"""An API family's own error shape: (status, the one-shape body) → (status, its body). Routes under a
dialect's path prefix answer in it (Anthropic's ``{"type": "error", ...}``, Ollama's ``{"error": "..."}``);
an app lists them on ``app.state.error_dialects`` as (prefix, dialect) pairs."""


def in_dialect(scope: Mapping[str, Any] | None, status: int, payload: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """``payload`` (the one shape) in the error dialect of the request's path, if its app has one."""
    if scope is None:
        return status, payload
    path = str(scope.get("path", ""))
    for prefix, dialect in getattr(getattr(scope.get("app"), "state", None), "error_dialects", ()):
        if path == prefix or path.startswith(prefix.rstrip("/") + "/"):
            return dialect(status, payload)  # type: ignore[no-any-return]
    return status, payload


def json_messages(status: int, payload: dict[str, Any], headers: tuple[tuple[bytes, bytes], ...] = (),
                  scope: Mapping[str, Any] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """The two ASGI messages (start, body) of a JSON response, for middleware that answers by itself
    (auth, drain, body limit, CORS, hosts) before any route runs; in the error dialect of ``scope``'s
    path, when given."""
    import json

    status, payload = in_dialect(scope, status, payload)

    data = json.dumps(payload).encode()
    start = {"type": "http.response.start", "status": status,
             "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode()),
                         *headers]}
    return start, {"type": "http.response.body", "body": data}


def error_type(status: int) -> str:
    """The error ``type`` of an answer given before any route ran (by middleware or the HTTP layer)."""
    return "invalid_request_error" if status < 500 else "service_unavailable"


async def send_json(send: Any, status: int, payload: dict[str, Any], retry_after: int | None = None,
                    scope: Mapping[str, Any] | None = None) -> None:
    """Answer with ``payload`` and close the connection (with ``Retry-After`` when given), for code that
    answers by itself instead of a route (drain, the connection limit, the health listener)."""
    headers: tuple[tuple[bytes, bytes], ...] = ((b"connection", b"close"),)
    if retry_after is not None:
        headers += ((b"retry-after", str(retry_after).encode()),)
    for message in json_messages(status, payload, headers, scope):
        await send(message)
