"""``python test_cold_start.py`` against real servers: its JSON, its exit codes, and what it leaves behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import write_config
from server_process import REPO

pytestmark = pytest.mark.slow

TINY = {"n_ctx": 256, "n_threads": 1}


@pytest.fixture(autouse=True)
def tool_temp_files_in_the_test_folder(tmp_path, monkeypatch) -> None:
    """The tool keeps its servers' logs after a failure (by design): here they go in the test's folder."""
    monkeypatch.setenv("TMPDIR", str(tmp_path))


def run_tool(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "test_cold_start.py", "--quiet", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout)


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # A zombie is gone for our purpose only if it is not ours to reap; check its state.
    status = Path(f"/proc/{pid}/status")
    return status.exists() and "zombie" in status.read_text()


@pytest.fixture(scope="module")
def tiny_cfg(model_files, tmp_path_factory) -> Path:
    return write_config(tmp_path_factory.mktemp("cs") / "tiny.yaml", models=[
        {"name": "tiny-a", "backend": "llama_cpp", "path": str(model_files["a"]), "options": TINY},
        {"name": "tiny-b", "backend": "llama_cpp", "path": str(model_files["b"]), "options": TINY},
    ])


def test_both_servers_measured_json_complete_and_nothing_left(tiny_cfg, tmp_path) -> None:
    out, chart = tmp_path / "cs.json", tmp_path / "timeline.png"
    r = run_tool("--gguf-config", str(tiny_cfg), "--json", str(out), "--chart", str(chart))
    assert r.returncode == 0, r.stdout + r.stderr
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f"timeline chart: {chart}" in r.stdout
    assert "PASS" in r.stdout and "ready s" in r.stdout
    report = json.loads(out.read_text())
    assert report["passed"] is True and report["failures"] == []
    (run,) = report["runs"]
    by_server = {res["server"]: res for res in run}
    assert set(by_server) == {"gguf", "asr_ocr"}
    for res in run:
        assert res["status"] == "ready"
        assert 0 < res["live_s"] <= res["ready_s"] <= res["first_inference_s"]
        assert all(m["state"] == "ready" and m["load_seconds"] > 0 for m in res["models"].values())
        assert gone(res["pid"])
    assert set(by_server["gguf"]["models"]) == {"tiny-a", "tiny-b"}
    assert set(by_server["gguf"]["first_request_latency"]) == {"generate"}
    assert set(by_server["asr_ocr"]["first_request_latency"]) == {"asr", "ocr"}
    summary = report["summary"]["parallel"]["gguf"]
    assert summary["ready_s"]["median"] == pytest.approx(by_server["gguf"]["ready_s"], abs=1e-3)
    # Each model's first request, its bytes, and where the start went (the server's /health/startup).
    gguf = by_server["gguf"]
    assert set(gguf["model_first_request_s"]) == {"tiny-a", "tiny-b"}
    assert gguf["model_bytes"]["tiny-a"] == os.path.getsize(tiny_a_path(tiny_cfg))
    marks = gguf["startup"]["marks"]
    assert 0 <= marks["interpreter"] <= marks["configured"] <= marks["web_stack_ready"] <= marks["listening"]
    assert all(m["load_start"] <= m["load_end"] <= gguf["startup"]["ready"] for m in gguf["startup"]["models"].values())
    assert "gguf (parallel), s from spawn: process" in r.stdout and "tiny-a: queued" in r.stdout
    assert f"PASS: slowest ready {max(res['ready_s'] for res in run):.2f} s" in r.stdout
    assert report["machine"]["cpus"] == os.cpu_count() and len(report["commit"].split("+")[0]) == 40
    # Its temporary log folder is removed after a pass, and the JSON names no deleted folder.
    assert report["log_dir"] is None and not Path(run[0]["log_path"]).parent.exists()


def tiny_a_path(config: Path) -> str:
    import yaml

    return yaml.safe_load(config.read_text())["models"][0]["path"]


def test_a_refused_connection_is_reported_at_once_not_waited_out(tmp_path) -> None:
    from coldstart.processes import free_port

    url = f"http://127.0.0.1:{free_port()}"
    t0 = time.monotonic()
    r = run_tool("--gguf-url", url, "--target", "100", timeout=60)
    assert r.returncode == 1 and time.monotonic() - t0 < 40  # the 10 s grace, not the 160 s timeout
    assert f"refused: nothing answers at {url} after 10 s" in r.stderr
    assert "server logs kept" not in r.stderr  # nothing was started: no (empty) log folder to point to


def test_servers_already_running_are_reported_as_such(tiny_cfg, tmp_path) -> None:
    from server_process import ServerProcess

    srv = ServerProcess("gguf_model_server", tmp_path / "running.log", tiny_cfg)
    try:
        srv.wait_settled(timeout=60)
        out = tmp_path / "cs.json"
        r = run_tool("--gguf-url", srv.url, "--json", str(out), timeout=120)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "already running" in r.stdout and "not a start" in r.stdout
        report = json.loads(out.read_text())
        assert report["runs"][0][0]["mode"] == "running" and "running" in report["summary"]
        assert report["log_dir"] is None  # removed: the JSON names no deleted folder
    finally:
        srv.stop()


def test_a_first_request_far_slower_than_the_load_is_flagged() -> None:
    from coldstart.measure import ServerResult
    from coldstart.report import slow_first_requests

    r = ServerResult("asr_ocr", "parallel", "http://127.0.0.1:1",
                     models={"whisper-base": {"load_seconds": 1.2}, "rapidocr": {"load_seconds": 0.8}},
                     model_first_request_s={"whisper-base": 52.0, "rapidocr": 0.3})
    (warning,) = slow_first_requests(r)
    assert "'whisper-base'" in warning and "52.00 s" in warning and "43x" in warning
    r.model_first_request_s["whisper-base"] = 1.9  # slower than its load, but not worth a warning
    assert slow_first_requests(r) == []


def test_target_exceeded_exits_1(tiny_cfg, tmp_path) -> None:
    out = tmp_path / "cs.json"
    r = run_tool("--only", "gguf", "--gguf-config", str(tiny_cfg), "--target", "0.001", "--json", str(out))
    assert r.returncode == 1
    report = json.loads(out.read_text())
    assert report["passed"] is False and "above the target" in report["failures"][0]
    assert gone(report["runs"][0][0]["pid"])


def test_failed_model_exits_1_with_reason(model_files, tmp_path) -> None:
    cfg = write_config(tmp_path / "c.yaml", models=[
        {"name": "ok", "backend": "llama_cpp", "path": str(model_files["a"]), "options": TINY},
        {"name": "gone", "backend": "llama_cpp", "path": "/nonexistent/m.gguf"},
    ])
    r = run_tool("--only", "gguf", "--gguf-config", str(cfg))
    assert r.returncode == 1
    assert "model 'gone' failed" in r.stderr and "/nonexistent/m.gguf" in r.stderr


def test_server_that_dies_exits_1(tmp_path) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("loader_workers: 0\n")
    out = tmp_path / "cs.json"
    r = run_tool("--only", "gguf", "--gguf-config", str(cfg), "--json", str(out))
    assert r.returncode == 1
    res = json.loads(out.read_text())["runs"][0][0]
    assert res["status"] == "died" and "loader_workers" in res["error"]


def test_repeat_and_sequential_interleave_and_report_ratio(tiny_cfg, tmp_path) -> None:
    out = tmp_path / "cs.json"
    r = run_tool("--only", "gguf", "--gguf-config", str(tiny_cfg), "--repeat", "2", "--sequential", "--json", str(out),
                 "--log-dir", str(tmp_path / "logs"))  # kept: a temporary log folder is removed after a pass
    assert r.returncode == 0, r.stderr
    report = json.loads(out.read_text())
    assert [run[0]["mode"] for run in report["runs"]] == ["parallel", "sequential", "parallel", "sequential"]
    assert report["summary"]["sequential"]["gguf"]["ready_s"]["n"] == 2
    assert report["summary"]["parallel_vs_sequential"]["gguf"]["ready_ratio"] > 0
    assert "parallel / sequential" in r.stdout
    seq_log = Path(report["runs"][1][0]["log_path"]).read_text()
    assert "sequential model loading" in seq_log
    assert all(gone(run[0]["pid"]) for run in report["runs"])


def test_cold_evicts_the_page_cache(tiny_cfg, tmp_path) -> None:
    out = tmp_path / "cs.json"
    r = run_tool("--only", "gguf", "--gguf-config", str(tiny_cfg), "--cold", "--json", str(out))
    assert r.returncode == 0, r.stderr
    assert json.loads(out.read_text())["cold_method"] == "fadvise"
    assert "evicted (fadvise)" in r.stdout


def test_url_mode_measures_a_running_server_and_leaves_it_running(start_server, tiny_cfg, tmp_path) -> None:
    srv = start_server(config=tiny_cfg)
    out = tmp_path / "cs.json"
    r = run_tool("--gguf-url", srv.url, "--json", str(out))
    assert r.returncode == 0, r.stderr
    (res,) = json.loads(out.read_text())["runs"][0]
    assert res["server"] == "gguf" and res["pid"] is None and res["status"] == "ready"
    assert srv.proc.poll() is None
    assert srv.client.get("/health").status_code == 200


def test_ctrl_c_kills_the_servers(tmp_path) -> None:
    # Ctrl-C's default action, even when this test runs as a background job (which starts with
    # SIGINT ignored, and Python then installs no KeyboardInterrupt handler).
    proc = subprocess.Popen([sys.executable, "test_cold_start.py", "--quiet"], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    pids = []
    deadline = time.monotonic() + 60
    while len(pids) < 2 and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.startswith("spawned "):
            pids.append(int(line.split(" pid ")[1].split()[0]))
    assert len(pids) == 2
    proc.send_signal(signal.SIGINT)
    assert proc.wait(60) == 130
    assert "interrupted" in proc.stderr.read()
    assert all(gone(p) for p in pids)


def test_timeline_bars_place_each_models_load_in_seconds_from_spawn() -> None:
    from coldstart.chart import bars
    from coldstart.measure import ServerResult

    r = ServerResult("gguf", "parallel", "http://127.0.0.1:1", spawn_wall=1000.0, ready_s=2.5, first_inference_s=3.0,
                     startup={"process_start": 1000.1, "models": {
                         "a": {"queued": 0.4, "load_start": 0.5, "load_end": 2.0, "state": "ready"},
                         "b": {"queued": 0.4, "load_start": 0.5, "load_end": None, "state": "failed"}}})
    ((label, segments),) = bars([r])
    assert label == "gguf: a"
    assert segments == [(0.0, pytest.approx(0.6)), (pytest.approx(0.6), pytest.approx(1.5)),
                        (pytest.approx(2.1), pytest.approx(0.4)), (2.5, 0.5)]
