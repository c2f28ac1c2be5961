"""The HTTP layer both servers share, served by real uvicorn on loopback (the model is a stand-in:
these tests are about connections, not inference)."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn
from fastapi import APIRouter

from coldstart.processes import free_port
from gguf_model_server.settings import GGUFServerSettings
from serving_core.app import create_model_app
from serving_core.http_server import uvicorn_config
from serving_core.registry import ModelRegistry
from serving_core.specs import ModelSpec


def _failing_router() -> APIRouter:
    router = APIRouter()

    @router.get("/boom")
    async def boom() -> dict[str, str]:
        raise RuntimeError("a bug, not bad input")

    return router


@pytest.fixture
def served() -> Iterator[int]:
    settings = GGUFServerSettings(host="127.0.0.1", port=free_port(), header_timeout_seconds=0.5,
                                  models=[ModelSpec(name="m", backend="llama_cpp", path="m.gguf")])
    registry = ModelRegistry(settings.models, lambda spec: "handle")
    app = create_model_app(settings, registry, title="t", routers=[_failing_router()])
    server = uvicorn.Server(uvicorn_config(app, settings))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "server did not start"
        time.sleep(0.01)
    yield settings.port
    server.should_exit = True
    thread.join(30)


def _read_response(s: socket.socket) -> tuple[bytes, dict[str, str], bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        more = s.recv(65536)
        assert more, f"connection closed before a response: {data!r}"
        data += more
    head, _, body = data.partition(b"\r\n\r\n")
    status, *lines = head.split(b"\r\n")
    headers = {k.strip().lower().decode(): v.strip().decode() for k, v in (ln.split(b":", 1) for ln in lines)}
    while len(body) < int(headers.get("content-length", "0")):
        body += s.recv(65536)
    return status, headers, body


def test_a_500_keeps_the_connection_usable(served: int) -> None:
    with socket.create_connection(("127.0.0.1", served), timeout=10) as s:
        s.sendall(b"GET /boom HTTP/1.1\r\nHost: x\r\n\r\n")
        status, headers, body = _read_response(s)
        assert status.startswith(b"HTTP/1.1 500")
        assert json.loads(body)["error"]["code"] == "internal_error" and b"Traceback" not in body
        assert headers.get("connection") != "close"
        # The next request on the same kept-alive connection is served.
        s.sendall(b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n")
        status, _, body = _read_response(s)
        assert status.startswith(b"HTTP/1.1 200") and json.loads(body) == {"status": "alive"}


def test_a_connection_that_never_finishes_its_head_gets_408_and_is_closed(served: int) -> None:
    with socket.create_connection(("127.0.0.1", served), timeout=10) as s:
        s.sendall(b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n")
        assert _read_response(s)[0].startswith(b"HTTP/1.1 200")
        # A second request on the kept-alive connection starts, then stalls: its own deadline applies.
        s.sendall(b"GET /health/live HTTP/1.1\r\nHo")
        data = b""
        while more := s.recv(65536):
            data += more
        assert data.startswith(b"HTTP/1.1 408")
