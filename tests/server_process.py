"""Start a real server as a subprocess on 127.0.0.1 and a free port, and stop it cleanly."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from coldstart.processes import free_port, kill_group

REPO = Path(__file__).resolve().parents[1]


def _soft_nofile(limit: int) -> None:
    """Start the child with a low soft open-file limit (the hard one unchanged), as on many hosts."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))


class ServerProcess:
    """``python -m <module> --config ... --host 127.0.0.1 --port <free>`` with its log in a file."""

    def __init__(self, module: str, log_path: Path, config: Path | None = None,
                 env: dict[str, str] | None = None, open_files: int | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        cmd = [sys.executable, "-m", module, "--host", "127.0.0.1", "--port", str(self.port)]
        if config is not None:
            cmd += ["--config", str(config)]
        full_env = {**os.environ, **(env or {})}
        full_env.pop("MODEL_SERVER_PORT", None)
        self._log = log_path.open("wb")
        self.proc = subprocess.Popen(cmd, cwd=REPO, env=full_env, stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True,
                                     preexec_fn=None if open_files is None else lambda: _soft_nofile(open_files))
        self.client = httpx.Client(base_url=self.url, timeout=120)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_live(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log()}")
            try:
                self.client.get("/health/live", timeout=1)
                return
            except httpx.TransportError:
                time.sleep(0.01)
        raise TimeoutError(f"server did not answer within {timeout}s:\n{self.log()}")

    def wait_settled(self, timeout: float = 120) -> dict[str, Any]:
        """Wait until no model is loading any more; return the last /health body."""
        self.wait_live(timeout)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            body = self.client.get("/health").json()
            if body["status"] != "loading":
                return body  # type: ignore[no-any-return]
            time.sleep(0.05)
        raise TimeoutError(f"models still loading after {timeout}s:\n{self.log()}")

    def signal_and_wait(self, sig: int, timeout: float = 90) -> int:
        """Send ``sig`` to the server alone (not its process group) and return its exit code."""
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        finally:
            self.client.close()

    def stop(self) -> int:
        self.client.close()
        kill_group(self.proc, grace=20)
        self._log.close()
        return self.proc.returncode
