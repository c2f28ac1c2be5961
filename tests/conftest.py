"""Shared fixtures: tiny GGUF files the tests build, and real server subprocesses."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from server_process import ServerProcess
from tiny_gguf import write_corrupt, write_tiny_gguf, write_truncated


@pytest.fixture(scope="session")
def model_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("models")
    a = write_tiny_gguf(d / "tiny-a.gguf", seed=1)
    return {
        "a": a,
        "b": write_tiny_gguf(d / "tiny-b.gguf", seed=2),
        "c": write_tiny_gguf(d / "tiny-c.gguf", seed=3),
        "truncated": write_truncated(a, d / "truncated.gguf"),
        "corrupt": write_corrupt(d / "corrupt.gguf"),
        "not_gguf": _write(d / "notes.gguf", b"this is a text file, not a model\n"),
        "dir": d,
    }


def _write(p: Path, data: bytes) -> Path:
    p.write_bytes(data)
    return p


def write_config(path: Path, **settings: object) -> Path:
    path.write_text(yaml.safe_dump(settings, sort_keys=False))
    return path


class Launcher:
    """Starts server subprocesses and stops every one of them at teardown."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.started: list[ServerProcess] = []

    def __call__(self, module: str = "gguf_model_server", config: Path | None = None,
                 env: dict[str, str] | None = None, open_files: int | None = None) -> ServerProcess:
        srv = ServerProcess(module, self.log_dir / f"server-{len(self.started)}.log", config, env, open_files)
        self.started.append(srv)
        return srv

    def stop_all(self) -> None:
        for srv in self.started:
            srv.stop()


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Launcher]:
    """Start servers for one test."""
    launcher = Launcher(tmp_path)
    yield launcher
    launcher.stop_all()


@pytest.fixture(scope="module")
def module_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Launcher]:
    """Start servers that live for the whole test module."""
    launcher = Launcher(tmp_path_factory.mktemp("servers"))
    yield launcher
    launcher.stop_all()


TINY_OPTS = {"n_ctx": 256, "n_threads": 1}


def start_configured(module_server, model_files, tmp_path_factory, models: list[dict], **settings: object):
    """A module-scoped GGUF server on ``models`` (relative paths resolve in the tiny-model folder),
    with every model settled; its last /health body is in ``.health``."""
    cfg = write_config(tmp_path_factory.mktemp("cfg") / "server.yaml", model_dir=str(model_files["dir"]),
                       models=models, **settings)
    srv = module_server(config=cfg)
    srv.health = srv.wait_settled(timeout=120)
    return srv


@pytest.fixture(scope="module")
def embedded_server(module_server):
    """A module-scoped GGUF server on the embedded models (no config), every model settled."""
    srv = module_server()
    srv.health = srv.wait_settled(timeout=180)
    return srv


@pytest.fixture(scope="module")
def tiny_server(module_server, model_files, tmp_path_factory):
    return start_configured(module_server, model_files, tmp_path_factory, [
        {"name": "tiny-a", "backend": "llama_cpp", "path": "tiny-a.gguf", "options": TINY_OPTS},
        {"name": "tiny-b", "backend": "llama_cpp", "path": "tiny-b.gguf", "options": TINY_OPTS},
        {"name": "tiny-c", "backend": "llama_cpp", "path": str(model_files["c"]), "options": TINY_OPTS},
        {"name": "missing", "backend": "llama_cpp", "path": "does-not-exist.gguf"},
        {"name": "corrupt", "backend": "llama_cpp", "path": "corrupt.gguf"},
        {"name": "truncated", "backend": "llama_cpp", "path": "truncated.gguf"},
        {"name": "not-gguf", "backend": "llama_cpp", "path": "notes.gguf"},
        {"name": "tiny-a-alias", "backend": "llama_cpp", "path": "tiny-a.gguf", "options": TINY_OPTS},
    ], retry_delay_seconds=0.1)


def closed_by_server(url: str) -> dict[str, float]:
    """/metrics: the connections the server closed (or requests it refused), by reason."""
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"{url}/metrics", timeout=15).text
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name.endswith("connections_closed_by_server"):
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    out[sample.labels["reason"]] = sample.value
    return out


def assert_error(r: httpx.Response, status: int) -> str:
    """Check the status and the one error shape; return the message."""
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body["error"]) >= {"code", "type", "message"}
    assert "Traceback" not in r.text
    return str(body["error"]["message"])


class StreamReader:
    """Reads one server-sent event stream in a background thread: ``events`` holds each event's data
    (``data: `` cut off), ``started`` is set at the first, ``error`` is what the read raised, if anything."""

    def __init__(self, url: str, route: str, body: dict[str, object], timeout: float = 120) -> None:
        import threading

        self.events: list[str] = []
        self.started = threading.Event()
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._read, args=(url, route, body, timeout), daemon=True)
        self._thread.start()

    def _read(self, url: str, route: str, body: dict[str, object], timeout: float) -> None:
        try:
            with httpx.stream("POST", f"{url}{route}", json={**body, "stream": True}, timeout=timeout) as r:
                for line in r.iter_lines():
                    if line.startswith("data: "):
                        self.events.append(line[6:])
                        self.started.set()
        except Exception as exc:  # noqa: BLE001 - the test inspects it
            self.error = exc

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)
