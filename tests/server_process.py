"""Start a real server as a subprocess on 127.0.0.1 and a free port, and stop it cleanly."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from coldstart.processes import free_port, kill_group

REPO = Path(__file__).resolve().parents[1]


class ServerProcess:
    """``python -m <module> --config ... --host 127.0.0.1 --port <free>`` with its log in a file."""

    def __init__(self, module: str, log_path: Path, config: Path | None = None,
                 env: dict[str, str] | None = None) -> None:
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
                                     start_new_session=True)
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

    def stop(self) -> int:
        self.client.close()
        kill_group(self.proc, grace=20)
        self._log.close()
        return self.proc.returncode
