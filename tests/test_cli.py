"""What a new user sees from the command line: start-up, Ctrl-C, a taken port, `make run`'s output."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest

from coldstart.processes import free_port

from conftest import TINY_OPTS, write_config
from server_process import REPO

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} ")


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("MODEL_SERVER_PORT", "ASR_OCR_PORT")}
    return {**env, **extra}


@pytest.fixture
def tiny_config(model_files, tmp_path):
    return write_config(tmp_path / "tiny.yaml", models=[
        {"name": "tiny-a", "backend": "llama_cpp", "path": str(model_files["a"]), "options": TINY_OPTS}])


def test_a_taken_port_is_one_plain_last_line_and_exit_3(tiny_config) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = subprocess.run([sys.executable, "-m", "gguf_model_server", "--config", str(tiny_config),
                            "--host", "127.0.0.1", "--port", str(port)],
                           cwd=REPO, capture_output=True, text=True, timeout=60, env=_env())
    assert r.returncode == 3, r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert last == (f"gguf-model-server could not start: port {port} on 127.0.0.1 is already in use; "
                    "choose another port with --port or GGUF_PORT")
    assert "Traceback" not in r.stderr
    assert "Loading model" not in r.stderr  # refused before loading anything


# 0.1-0.2 s lands in the imports (where a raised KeyboardInterrupt once made CPython exit -2 even
# though it was caught), later ones in the loading and just before uvicorn takes over.
@pytest.mark.parametrize("delay", [0.1, 0.15, 0.2, 0.5, 0.9, 1.3])
def test_ctrl_c_during_start_up_exits_130_quietly(tiny_config, delay) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "gguf_model_server", "--config", str(tiny_config),
                             "--host", "127.0.0.1", "--port", str(free_port())],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_env())
    time.sleep(delay)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, out
    assert "Traceback" not in out and "KeyboardInterrupt" not in out, out


def test_every_log_line_has_one_timestamp_format(start_server, tiny_config) -> None:
    srv = start_server(config=tiny_config)
    srv.wait_settled(timeout=60)
    srv.client.get("/health")
    srv.stop()
    lines = [ln for ln in srv.log().splitlines() if ln.strip()]
    assert any("Uvicorn running on" in ln for ln in lines)  # uvicorn's own lines are among them
    # One access line per request, with the model and the duration (uvicorn's own is off).
    assert any("serving_core.access: GET /health model=- status=200" in ln for ln in lines), lines
    assert not any('"GET /health HTTP/1.1"' in ln for ln in lines)
    untimed = [ln for ln in lines if not TIMESTAMP.match(ln)]
    assert untimed == []


def test_make_run_prefixes_each_server_and_ends_with_the_port_conflict() -> None:
    """`make run`'s script with the GGUF port taken: both servers' lines are prefixed, the ASR/OCR
    server is stopped too, and the conflict is the last, plain line."""
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        gguf_port = taken.getsockname()[1]
        asr_port = free_port()
        r = subprocess.run(["bash", "scripts/run.sh"], cwd=REPO, capture_output=True, text=True, timeout=300,
                           env=_env(PYTHON=sys.executable, MODEL_SERVER_PORT=str(gguf_port),
                                    ASR_OCR_PORT=str(asr_port)))
    assert r.returncode == 3, r.stdout + r.stderr
    lines = [ln for ln in r.stdout.splitlines() if ln.strip()]
    assert lines[-1].startswith(f"gguf-model-server could not start: port {gguf_port}")
    body = lines[:-2] if lines[-2] == lines[-1] else lines[:-1]
    # Every line is prefixed with its server's name. (The ASR/OCR server may be stopped before it
    # printed anything when the machine is busy: the GGUF server's port check takes milliseconds.)
    assert body and all(ln.startswith(("gguf    | ", "asr-ocr | ")) for ln in body), body
    assert any(ln.startswith("gguf    | ") for ln in body)
    with pytest.raises(OSError):  # the ASR/OCR server was stopped too, not left running
        socket.create_connection(("127.0.0.1", asr_port), timeout=2).close()


def test_json_logs_are_one_object_per_line(start_server, tiny_config) -> None:
    srv = start_server(config=tiny_config, env={"GGUF_LOG_FORMAT": "json"})
    srv.wait_settled(timeout=60)
    srv.client.get("/health")
    srv.stop()
    lines = [ln for ln in srv.log().splitlines() if ln.strip()]
    entries = [json.loads(ln) for ln in lines]  # every line parses
    assert all({"time", "level", "logger", "message"} <= set(e) for e in entries)
    assert any(e["logger"] == "serving_core.access" and e["message"].startswith("GET /health") for e in entries)
    assert any("Loading time" in e["message"] for e in entries)  # the loading lines stay


def test_dash_m_serves_a_file_without_a_config(start_server, model_files) -> None:
    from coldstart.processes import module_command

    import server_process

    srv = server_process.Launched(
        lambda port: [*module_command("gguf_model_server", None)(port), "-m", str(model_files["a"]), "-c", "256"],
        start_server.log_dir / "dash-m.log", env=server_process.server_env(None))
    start_server.started.append(srv)
    srv.wait_settled(timeout=60)
    assert list(srv.client.get("/health").json()["models"]) == ["tiny-a"]
    r = srv.client.post("/generate", json={"prompt": "the", "max_tokens": 2})
    assert r.status_code == 200 and r.json()["model"] == "tiny-a"  # the file given, not the embedded defaults


def test_openmp_spinning_is_limited_unless_the_operator_chose(monkeypatch) -> None:
    from serving_core.openmp import SPIN_COUNT, limit_openmp_spinning

    monkeypatch.delenv("GOMP_SPINCOUNT", raising=False)
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    limit_openmp_spinning()
    assert os.environ["GOMP_SPINCOUNT"] == SPIN_COUNT
    monkeypatch.setenv("GOMP_SPINCOUNT", "50")
    limit_openmp_spinning()
    assert os.environ["GOMP_SPINCOUNT"] == "50"
    monkeypatch.delenv("GOMP_SPINCOUNT")
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")
    limit_openmp_spinning()
    assert "GOMP_SPINCOUNT" not in os.environ


@pytest.mark.parametrize("module", ["gguf_model_server", "asr_ocr_model_server"])
def test_both_servers_limit_openmp_spinning_before_anything_loads(module: str) -> None:
    # The entry point runs with run_server replaced: what the environment holds when the server
    # would start (OpenMP reads it when the first model library loads, later).
    code = ("import os, serving_core.cli as cli\n"
            "cli.run_server = lambda *a, **k: print(os.environ.get('GOMP_SPINCOUNT')) or 0\n"
            f"from {module}.__main__ import main\n"
            "main([])\n")
    env = {k: v for k, v in _env().items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert r.stdout.strip() == "1000", r.stdout + r.stderr


_STUCK_CALL = """
import logging, signal, sys, threading, time
from serving_core.cli import ShutdownWatchdog
logging.basicConfig(level="INFO")
watchdog = ShutdownWatchdog(0.5)
# A model call that does not stop: a worker thread the interpreter joins at exit, as it joins the
# event loop's executor threads.
threading.Thread(target=time.sleep, args=(40,)).start()
watchdog.signalled(int(sys.argv[1]))
"""


@pytest.mark.parametrize("sig,code", [(signal.SIGTERM, 0), (signal.SIGINT, 130)], ids=["SIGTERM", "SIGINT"])
def test_a_model_call_that_never_stops_does_not_hold_the_exit_past_the_bound(sig: int, code: int) -> None:
    # registry.close() leaves such a call unfreed after shutdown_drain_seconds; the exit must not wait for it.
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, "-c", _STUCK_CALL, str(int(sig))], cwd=REPO, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == code, r.stderr
    assert time.monotonic() - t0 < 30, r.stderr  # the stuck call would hold it 40 s
