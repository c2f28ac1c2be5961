"""The HTTP layer both servers share, served by real uvicorn on loopback (the model is a stand-in:
these tests are about connections, not inference)."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator

import httpx
import pytest
import uvicorn
from fastapi import APIRouter

from coldstart.processes import free_port
from gguf_model_server.settings import GGUFServerSettings
from serving_core.app import create_model_app
from serving_core.http_server import listening_sockets, uvicorn_config
from serving_core.registry import ModelRegistry
from serving_core.specs import ModelSpec


def _failing_router() -> APIRouter:
    router = APIRouter()

    @router.get("/boom")
    async def boom() -> dict[str, str]:
        raise RuntimeError("a bug, not bad input")

    @router.post("/echo")
    async def echo(body: dict[str, object]) -> dict[str, object]:
        return body

    return router


class Served:
    """A real uvicorn server on loopback with the project's protocol, in a thread."""

    def __init__(self, **overrides: object) -> None:
        self.settings = GGUFServerSettings(**{
            "host": "127.0.0.1", "port": free_port(), "header_timeout_seconds": 0.5,
            "models": [ModelSpec(name="m", backend="llama_cpp", path="m.gguf")], **overrides})
        registry = ModelRegistry(self.settings.models, lambda spec: "handle")
        self.app = create_model_app(self.settings, registry, title="t", routers=[_failing_router()])
        config = uvicorn_config(self.app, self.settings)
        self.server = uvicorn.Server(config)
        sockets = listening_sockets(config, self.settings)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": sockets}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < deadline and self.thread.is_alive(), "server did not start"
            time.sleep(0.01)

    @property
    def port(self) -> int:
        return self.settings.port

    @property
    def closed(self) -> dict[str, int]:
        return dict(self.app.state.connections.closed)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)


@pytest.fixture
def serve() -> Iterator[Callable[..., Served]]:
    started: list[Served] = []

    def start(**overrides: object) -> Served:
        started.append(Served(**overrides))
        return started[-1]

    yield start
    for s in started:
        s.stop()


@pytest.fixture
def served(serve) -> int:
    return serve().port


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


def _read_all(s: socket.socket) -> bytes:
    data = b""
    while more := s.recv(65536):
        data += more
    return data


@pytest.mark.parametrize("size", [17_000, 70_000])
def test_a_head_over_the_limit_gets_431_even_in_one_read(serve, size: int) -> None:
    srv = serve()  # max_header_bytes 16 KiB
    head = b"GET /health/live HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * size + b"\r\n\r\n"
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
        s.sendall(head)
        data = _read_all(s)
    status, _, body = data.partition(b"\r\n\r\n")
    assert status.startswith(b"HTTP/1.1 431"), data[:200]
    assert json.loads(body)["error"]["code"] == "header_too_large"
    assert srv.closed.get("header_too_large") == 1
    # A head just under the limit, and a large body after a small head, are fine.
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
        s.sendall(b"GET /health/live HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 15_000 + b"\r\n\r\n")
        assert _read_response(s)[0].startswith(b"HTTP/1.1 200")
        s.sendall(b"POST /health/live HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" + b"x" * 100_000)
        assert _read_response(s)[0].startswith(b"HTTP/1.1 405")


@pytest.mark.slow  # ~3 s: waits out the body deadline
def test_a_trickled_body_gets_408_and_a_slow_but_steady_one_does_not(serve) -> None:
    srv = serve(body_timeout_seconds=1, min_body_bytes_per_second=1000)
    head = b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 4000\r\n\r\n"
    with socket.create_connection(("127.0.0.1", srv.port), timeout=30) as trickler:
        trickler.sendall(head + b"{")
        data = _read_all(trickler)  # nothing more is sent: the body deadline (1 s + 1 ms per byte) ends it
    assert data.startswith(b"HTTP/1.1 408") and b"body_timeout" in data, data
    assert srv.closed.get("body_timeout") == 1
    # 4000 bytes at ~2000 bytes/s (2 s, past the 1 s timeout but above the minimum rate): answered.
    with socket.create_connection(("127.0.0.1", srv.port), timeout=30) as steady:
        steady.sendall(head)
        body = b'{"prompt": "' + b"a" * 3970 + b'"'
        body += b" " * (4000 - len(body) - 1) + b"}"
        for i in range(0, 4000, 200):
            steady.sendall(body[i:i + 200])
            time.sleep(0.1)
        status, _, answer = _read_response(steady)
    assert status.startswith(b"HTTP/1.1 200") and len(json.loads(answer)["prompt"]) == 3970, status
    assert srv.closed.get("body_timeout") == 1


def test_a_client_that_half_closes_after_its_request_still_gets_the_answer(served: int) -> None:
    with socket.create_connection(("127.0.0.1", served), timeout=10) as s:
        s.sendall(b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n")
        s.shutdown(socket.SHUT_WR)
        data = _read_all(s)
    # An interim 100 Continue may come first (it is how the server tells a half-close from a hang-up).
    data = data.removeprefix(b"HTTP/1.1 100 Continue\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 200") and data.endswith(b'{"status":"alive"}'), data


def test_past_the_cap_new_connections_drop_the_idle_ones_and_probes_are_answered(serve) -> None:
    srv = serve(max_connections=20, header_timeout_seconds=60)
    idle = [socket.create_connection(("127.0.0.1", srv.port), timeout=10) for _ in range(20)]
    try:
        time.sleep(0.3)
        # A new client is served; the oldest idle connection made room for it (503 + Retry-After).
        with httpx.Client(base_url=f"http://127.0.0.1:{srv.port}", timeout=10) as client:
            assert client.get("/health/live").status_code == 200
        first = _read_all(idle[0])
        assert first.startswith(b"HTTP/1.1 503") and b"retry-after:" in first.lower(), first
        assert srv.closed.get("dropped_awaiting_first_head", 0) >= 1
    finally:
        for s in idle:
            s.close()


def test_when_nothing_can_be_dropped_requests_get_503_but_probes_200(serve) -> None:
    srv = serve(max_connections=2)
    book = srv.app.state.connections
    # Two connections whose requests are running (as the book sees them) cannot be dropped.
    from serving_core.connections import Phase

    class Running:
        def body_rate(self, now: float) -> None:
            return None

        def drop(self, reason: str) -> None:
            raise AssertionError("a running request was dropped")

    running = [Running(), Running()]
    for r in running:
        book.opened(r)
        book.move(r, Phase.BUSY)
    with httpx.Client(base_url=f"http://127.0.0.1:{srv.port}", timeout=10) as client:
        r = client.get("/models")
        assert r.status_code == 503 and r.json()["error"]["code"] == "too_many_connections"
        assert int(r.headers["retry-after"]) >= 1
        assert client.get("/health/live").status_code == 200
        assert client.get("/health/ready").status_code in (200, 503)  # answered, not refused
    for r in running:
        book.forget(r)


def test_the_health_listener_serves_probes_and_metrics_only(serve) -> None:
    health = free_port()
    srv = serve(health_port=health)
    with httpx.Client(base_url=f"http://127.0.0.1:{health}", timeout=10) as client:
        assert client.get("/health/live").status_code == 200
        assert client.get("/metrics").status_code == 200
        r = client.get("/models")
        assert r.status_code == 404 and "main port" in r.json()["error"]["message"]
    assert httpx.get(f"http://127.0.0.1:{srv.port}/models", timeout=10).status_code == 200
