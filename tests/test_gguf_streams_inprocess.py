"""Streaming responses driven through the ASGI app in-process, with full control of the client side."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from gguf_model_server.app import create_app
from gguf_model_server.engine import Engine, Generation
from gguf_model_server.loading import build_registry
from gguf_model_server.settings import GGUFServerSettings


@pytest.fixture(scope="module")
def app(model_files):
    settings = GGUFServerSettings.load(models=[{"name": "tiny-a", "backend": "llama_cpp", "path": str(model_files["a"]),
                                                "options": {"n_ctx": 256, "n_threads": 1, "parallel": 2}}])
    registry = build_registry(settings)
    registry.start_loading()
    assert registry.wait(60)
    application = create_app(settings, registry)
    application.state.init_state()  # what the lifespan does
    yield application
    registry.close()


async def call(app, body: bytes, receive_after_body: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One POST /v1/completions through the ASGI interface; what the client side receives next is
    scripted. Returns the messages the app sent."""
    incoming = [{"type": "http.request", "body": body, "more_body": False}, *receive_after_body]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if incoming:
            return incoming.pop(0)
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1",
             "method": "POST", "scheme": "http", "path": "/v1/completions", "raw_path": b"/v1/completions",
             "query_string": b"", "root_path": "", "headers": [(b"content-type", b"application/json")],
             "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 2)}
    await asyncio.wait_for(app(scope, receive, send), 60)
    return sent


def test_a_stream_whose_client_left_before_the_response_is_cancelled(app, monkeypatch) -> None:
    # The client is gone by the time the response would start: Starlette cancels the body before
    # the generator ever runs, so only the response itself can cancel the generation.
    cancelled: list[Generation] = []
    real_cancel = Engine.cancel

    def spy(self: Engine, handle: Generation) -> None:
        cancelled.append(handle)
        real_cancel(self, handle)

    monkeypatch.setattr(Engine, "cancel", spy)
    body = b'{"model": "tiny-a", "prompt": "the", "max_tokens": 200, "stream": true}'
    asyncio.run(call(app, body, [{"type": "http.disconnect"}]))
    assert len(cancelled) >= 1 and all(h.cancelled for h in cancelled)
    assert app.state.registry.models["tiny-a"].refs == 0  # the stream released its model's lease


def test_a_stream_read_to_the_end_is_not_cut(app) -> None:
    body = b'{"model": "tiny-a", "prompt": "the", "max_tokens": 5, "stream": true}'
    sent = asyncio.run(call(app, body, []))
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 200
    text = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body").decode()
    assert text.rstrip().endswith("data: [DONE]") and '"finish_reason":"length"' in text
    assert app.state.registry.models["tiny-a"].refs == 0


def test_a_stream_releases_its_model_without_any_middleware(app) -> None:
    # The lease's holder releases it: the bare route stack (no metrics middleware, no request
    # context) must leave no reference behind, or the model could never be unloaded again.
    from contextlib import AsyncExitStack

    async def router_app(scope, receive, send) -> None:  # the routes alone, below every middleware
        async with AsyncExitStack() as inner, AsyncExitStack() as outer:
            scope = {**scope, "app": app, "fastapi_inner_astack": inner, "fastapi_middleware_astack": outer}
            await app.router(scope, receive, send)

    body = b'{"model": "tiny-a", "prompt": "the", "max_tokens": 3, "stream": true}'
    sent = asyncio.run(call(router_app, body, []))
    assert sent[0]["status"] == 200
    assert app.state.registry.models["tiny-a"].refs == 0
