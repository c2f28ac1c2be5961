"""Hostile connections against real servers.

Connection exhaustion (issue 17 §1): 1,000 idle sockets and 1,000 body
tricklers, each reopened as soon as the server closes it, while a client probes /health/live and
sends real requests on new connections. Probes must all be answered 200, real requests ≥ 90 % —
with the shipped limits, and with a cap below the flood (connections dropped to make room, probes
on the health listener). And a client that half-closes its side after sending its request
still gets the answer."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from coldstart.processes import free_port

from conftest import TINY_OPTS, closed_by_server, write_config
from media import speak_wav

FLOOD = Path(__file__).with_name("connection_flood.py")


def _fresh(url: str) -> httpx.Client:
    # A new connection for every request, as a kubelet probe opens one.
    return httpx.Client(base_url=url, timeout=15, limits=httpx.Limits(max_keepalive_connections=0))


def _under_flood(url: str, port: int, real: tuple[str, str, dict[str, object] | None], seconds: float = 25.0,
                 probe_url: str | None = None):
    flood = subprocess.Popen([sys.executable, str(FLOOD), str(port), "--idle", "1000", "--tricklers", "1000",
                              "--seconds", str(seconds + 20)], stdout=subprocess.PIPE, text=True)
    try:
        assert flood.stdout is not None
        assert flood.stdout.readline().strip() == "ready", "the flood did not open its sockets"
        probes: list[int | str] = []
        answers: list[int | str] = []
        stop = time.monotonic() + seconds

        def send_real() -> None:
            method, path, body = real
            with _fresh(url) as client:
                while time.monotonic() < stop:
                    try:
                        answers.append(client.request(method, path, json=body).status_code)
                    except httpx.HTTPError as exc:
                        answers.append(type(exc).__name__)
                    time.sleep(0.3)

        worker = threading.Thread(target=send_real)
        worker.start()
        with _fresh(probe_url or url) as client:
            while time.monotonic() < stop:
                try:
                    probes.append(client.get("/health/live").status_code)
                except httpx.HTTPError as exc:
                    probes.append(type(exc).__name__)
                time.sleep(0.2)
        worker.join(60)
        return probes, answers
    finally:
        flood.kill()
        flood.wait(30)


TINY = {"name": "tiny-a", "backend": "llama_cpp", "path": "", "options": TINY_OPTS}
GENERATE = ("POST", "/generate", {"prompt": "the", "max_tokens": 4})


@pytest.mark.slow
def test_a_connection_flood_leaves_probes_and_real_requests_served(start_server, model_files, tmp_path) -> None:
    cfg = write_config(tmp_path / "c.yaml", models=[{**TINY, "path": str(model_files["a"])}],
                       body_timeout_seconds=5)  # so that the tricklers are cut within the test
    srv = start_server(config=cfg)  # otherwise the shipped limits
    srv.wait_settled(timeout=60)
    probes, answers = _under_flood(srv.url, srv.port, GENERATE)
    assert len(probes) >= 20 and probes.count(200) == len(probes), probes
    assert len(answers) >= 10 and answers.count(200) >= 0.9 * len(answers), answers
    closed = closed_by_server(srv.url)
    # The idle sockets ran out of time for their heads, the tricklers for their bodies: on /metrics.
    assert closed.get("header_timeout", 0) >= 1000 and closed.get("body_timeout", 0) >= 1000, closed
    assert srv.client.get("/health/live").status_code == 200


@pytest.mark.slow
def test_past_the_cap_the_flood_is_dropped_and_the_health_listener_answers(start_server, model_files,
                                                                          tmp_path) -> None:
    health = free_port()
    cfg = write_config(tmp_path / "c.yaml", models=[{**TINY, "path": str(model_files["a"])}],
                       max_connections=1500, health_port=health)  # below the flood's 2,000
    srv = start_server(config=cfg)
    srv.wait_settled(timeout=60)
    health_url = f"http://127.0.0.1:{health}"
    probes, answers = _under_flood(srv.url, srv.port, GENERATE, probe_url=health_url)
    assert len(probes) >= 20 and probes.count(200) == len(probes), probes
    assert len(answers) >= 10 and answers.count(200) >= 0.9 * len(answers), answers
    closed = closed_by_server(health_url)
    assert closed.get("dropped_awaiting_first_head", 0) > 0 and closed.get("dropped_slow_body", 0) > 0, closed
    # The health listener serves the probes and /metrics only.
    r = httpx.post(f"{health_url}/generate", json={"prompt": "the"}, timeout=15)
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


@pytest.mark.slow
def test_the_asr_ocr_server_survives_the_same_flood(start_server) -> None:
    srv = start_server("asr_ocr_model_server")
    srv.wait_settled(timeout=120)
    probes, answers = _under_flood(srv.url, srv.port, ("GET", "/models", None), seconds=15)
    assert len(probes) >= 10 and probes.count(200) == len(probes), probes
    assert len(answers) >= 5 and answers.count(200) >= 0.9 * len(answers), answers


def _half_closed_exchange(port: int, request: bytes) -> bytes:
    """Send ``request``, shut the sending side (``shutdown(SHUT_WR)``, as ``nc -N`` does), read all."""
    with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
        s.sendall(request)
        s.shutdown(socket.SHUT_WR)
        data = b""
        while more := s.recv(65536):
            data += more
    # The interim 100 Continue is how the server tells a half-close from a hang-up (see below).
    assert data.startswith(b"HTTP/1.1 100 Continue\r\n\r\n"), data[:200]
    return data.removeprefix(b"HTTP/1.1 100 Continue\r\n\r\n")


def test_a_half_closed_generate_request_is_answered(start_server, model_files, tmp_path) -> None:
    cfg = write_config(tmp_path / "c.yaml", models=[{**TINY, "path": str(model_files["a"])}])
    srv = start_server(config=cfg)
    srv.wait_settled(timeout=60)
    body = b'{"prompt": "the", "max_tokens": 4}'
    data = _half_closed_exchange(srv.port, b"POST /generate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
                                 b"\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
    assert data.startswith(b"HTTP/1.1 200"), data[:300]
    assert b'"completion_tokens":4' in data.replace(b" ", b"")


@pytest.mark.slow
def test_a_half_closed_upload_is_answered(start_server, tmp_path) -> None:
    srv = start_server("asr_ocr_model_server")
    srv.wait_settled(timeout=120)
    wav = speak_wav("hello world", tmp_path / "hello.wav").read_bytes()
    boundary = b"halfclosedboundary"
    body = (b"--" + boundary + b'\r\nContent-Disposition: form-data; name="audio"; filename="hello.wav"\r\n'
            b"Content-Type: audio/wav\r\n\r\n" + wav + b"\r\n--" + boundary + b"--\r\n")
    data = _half_closed_exchange(srv.port, b"POST /asr HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; "
                                 b"boundary=" + boundary + b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    assert data.startswith(b"HTTP/1.1 200"), data[:300]
    assert b"hello" in data.lower()

