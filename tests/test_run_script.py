"""``make run`` (scripts/run.sh): both servers on their defaults until Ctrl-C, which drains both."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time

import httpx
import pytest

from coldstart.processes import REPO, free_port

from conftest import StreamReader

pytestmark = pytest.mark.slow


def _children(pid: int, module: str) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid), "-f", f"python -m {module}"], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def test_ctrl_c_gives_a_running_stream_its_grace_and_exits_130(tmp_path) -> None:
    ports = {"MODEL_SERVER_PORT": str(free_port()), "ASR_OCR_PORT": str(free_port())}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GGUF_", "ASR_OCR_"))}
    # A long grace: on a busy machine a decode can crawl (OpenMP threads sharing one core), and the
    # property here is that the drain is not cut short by a second signal, not how fast it goes.
    grace = {"GGUF_SHUTDOWN_GRACE_SECONDS": "150"}
    run = subprocess.Popen(["bash", "scripts/run.sh"], cwd=REPO, env={**env, **ports, **grace}, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, start_new_session=True)
    output: list[str] = []
    reader = threading.Thread(target=lambda: output.extend(run.stdout or []), daemon=True)
    reader.start()
    gguf = f"http://127.0.0.1:{ports['MODEL_SERVER_PORT']}"
    asr = f"http://127.0.0.1:{ports['ASR_OCR_PORT']}"
    try:
        deadline = time.monotonic() + 180
        for url in (gguf, asr):
            while True:
                assert time.monotonic() < deadline and run.poll() is None, "".join(output)
                try:
                    if httpx.get(f"{url}/health/ready", timeout=5).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.5)
        stream = StreamReader(gguf, "/generate", {"prompt": "Once upon a time", "max_tokens": 48}, timeout=180)
        assert stream.started.wait(60)
        # Ctrl-C reaches both servers. Here the ASR/OCR server (idle) stops first, before the
        # script sees the signal itself: the race that made it send the GGUF server a second
        # signal ("stop now"), cutting the stream.
        servers = _children(run.pid, "gguf_model_server") + _children(run.pid, "asr_ocr_model_server")
        assert len(servers) == 2, servers
        for pid in reversed(servers):
            os.kill(pid, signal.SIGINT)
        stream.join(180)
        events = stream.events
        assert run.wait(180) == 130
        reader.join(10)
        log = "".join(output)
        assert events[-1] == "[DONE]", events[-3:]
        final = json.loads(events[-2])
        (tmp_path / "run.log").write_text(log)  # kept for a failure's diagnosis
        assert "finish_reason" in final, (events[-3:], tmp_path / "run.log")  # not cut by a second signal
        assert final["finish_reason"] == "length" and final["usage"]["completion_tokens"] == 48, final
        assert "Traceback" not in log and "stopped (Ctrl-C)" in log, log
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
            run.wait(30)
