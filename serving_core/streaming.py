"""Streamed responses: server-sent events framing, and a response that ends its work however the
client leaves (both servers' streams: generations, transcriptions)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from fastapi.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from serving_core.drain import Drain
from serving_core.errors import ServerShuttingDown, ServingError, error_body

log = logging.getLogger("serving_core.streaming")


def sse_event(data: Any) -> str:
    """One ``data:`` event; dicts and pydantic models are JSON-encoded."""
    if hasattr(data, "model_dump_json"):
        payload = data.model_dump_json(exclude_none=False)
    elif isinstance(data, str):
        payload = data
    else:
        payload = json.dumps(data, separators=(",", ":"))
    return f"data: {payload}\n\n"


def sse_typed_event(data: Any) -> str:
    """One event named by its own ``type`` field (``event: <type>`` + ``data:``), as Anthropic's and
    OpenAI's Responses streams are written; dicts and pydantic models are JSON-encoded."""
    if hasattr(data, "model_dump"):
        data = data.model_dump(mode="json")
    return f"event: {data['type']}\ndata: {json.dumps(data, separators=(',', ':'), ensure_ascii=False)}\n\n"


SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


@dataclass(frozen=True)
class StreamFraming:
    """How an API family writes its stream: each event's bytes, an error after the 200 as an event
    of its own shape, and what ends the stream (OpenAI's ``[DONE]``; nothing for others)."""

    media_type: str
    frame: Callable[[object], str]
    error: Callable[[ServingError], object]
    end: str | None = None


OPENAI_SSE = StreamFraming(media_type="text/event-stream", frame=sse_event,
                           error=lambda exc: error_body(exc.code, exc.type, exc.message), end=sse_event("[DONE]"))


class EventStream(StreamingResponse):
    """The streamed events of one piece of work (a generation, a transcription) on ``model``.
    However the response ends, ``close`` runs (cancel the work if still running, release its
    model's lease) — also when Starlette cancels the body before it ever ran (the client left while
    the request was being admitted), where the body generator's own ``finally`` never runs. When
    the server's drain runs out of grace, the stream ends with an error event."""

    def __init__(self, events: AsyncIterator[object], close: Callable[[], None], model: str,
                 framing: StreamFraming = OPENAI_SSE, what: str = "generation") -> None:
        headers = SSE_HEADERS if framing.media_type == "text/event-stream" else {"Cache-Control": "no-cache"}
        super().__init__(_not_started(), media_type=framing.media_type, headers=headers)
        self._events = events
        self._close = close
        self._model = model
        self._framing = framing
        self._what = what

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        drain: Drain | None = getattr(getattr(scope.get("app"), "state", None), "drain", None)
        stop = drain.stream_stop() if drain is not None else None
        self.body_iterator = framed(self._events, self._model, self._framing, stop=stop, what=self._what)
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._close()
            if drain is not None and stop is not None:
                drain.forget_stream(stop)


async def _not_started() -> AsyncIterator[str]:  # a placeholder: the iterator needs the app (__call__)
    return
    yield ""


async def framed(events: AsyncIterator[object], model: str, framing: StreamFraming,
                 stop: asyncio.Event | None = None, what: str = "generation") -> AsyncIterator[str]:
    """``events`` written with ``framing``; an error after the 200 becomes an error event, and so does
    ``stop`` being set; always ends with ``framing.end``."""
    iterator = aiter(events)
    stopped = asyncio.ensure_future(stop.wait()) if stop is not None else None
    try:
        while True:
            upcoming = asyncio.ensure_future(anext(iterator))
            if stopped is not None:
                await asyncio.wait({upcoming, stopped}, return_when=asyncio.FIRST_COMPLETED)
                if not upcoming.done():
                    upcoming.cancel()
                    yield framing.frame(framing.error(ServerShuttingDown(
                        f"the server is shutting down; the {what} was stopped (retry elsewhere)")))
                    break
            try:
                event = await upcoming
            except StopAsyncIteration:
                break
            yield framing.frame(event)
    except ServingError as exc:
        yield framing.frame(framing.error(exc))
    except Exception:
        log.exception("%s failed mid-stream on model '%s'", what, model)
        yield framing.frame(framing.error(ServingError(f"{what} failed; see the server log")))
    finally:
        if stopped is not None:
            stopped.cancel()
    if framing.end is not None:
        yield framing.end
