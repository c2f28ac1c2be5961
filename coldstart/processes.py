"""The one launcher for server child processes, used by the cold-start tool, the benchmarks and the
tests: each server in its own session on 127.0.0.1, its output in a log file, polled over HTTP,
and killed with its whole process group on every way out."""

from __future__ import annotations

import os
import resource
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import httpx

from coldstart.server_kinds import SERVER_KINDS

REPO = Path(__file__).resolve().parents[1]
POLL_SECONDS = 0.02

Command = Callable[[int], list[str]]
"""The command line of a server, given the port it must listen on."""

# Variables that change what a server loads or how, beside each kind's own prefix (its ``*_`` settings):
# scrubbed for benchmarks and tests, whose servers must run on exactly the configuration they pass.
_SETTINGS_NAMES = ("MODEL_DIR",)


def free_port() -> int:
    """A TCP port nothing listens on at 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def module_command(module: str, config: Path | None = None) -> Command:
    """``python -m MODULE --host 127.0.0.1 --port PORT [--config CONFIG]`` with this interpreter."""

    def build(port: int) -> list[str]:
        cmd = [sys.executable, "-m", module, "--host", "127.0.0.1", "--port", str(port)]
        return [*cmd, "--config", str(config)] if config is not None else cmd

    return build


def server_env(extra: Mapping[str, str] | None = None, *, keep_settings: bool = False) -> dict[str, str]:
    """This process's environment for a child server: this checkout first on ``PYTHONPATH``, no
    port variables, and (unless ``keep_settings``) no server settings variables; then ``extra``."""
    # The launcher decides ports: the variables that choose a server's port never reach a child.
    port_variables = {v for kind in SERVER_KINDS for v in kind.port_variables}
    prefixes = tuple(kind.env_prefix for kind in SERVER_KINDS)
    env = {k: v for k, v in os.environ.items() if k not in port_variables}
    if not keep_settings:
        env = {k: v for k, v in env.items() if not k.startswith(prefixes) and k not in _SETTINGS_NAMES}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    env.update(extra or {})
    return env


def kill_group(proc: subprocess.Popen[Any], grace: float = 10.0) -> None:
    """SIGTERM the process group, SIGKILL it if still there after ``grace`` seconds."""
    if proc.poll() is None:
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        with suppress(subprocess.TimeoutExpired):
            proc.wait(grace)
    # The group may outlive its leader (worker processes): make sure it is gone.
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    if proc.poll() is None:
        proc.wait(5)


class ServerExited(RuntimeError):
    """The server process ended while it was being waited for; the message carries its log's end."""


class ServerProcess:
    """A server started as ``command(port)`` in a new session, output to ``log_path``.

    ``t_spawn`` is ``time.perf_counter()`` just before the process was created: every ``wait_*``
    returns seconds from it. ``client`` is an ``httpx.Client`` on the server's URL.
    """

    def __init__(self, command: Command, log_path: Path, *, port: int | None = None,
                 env: Mapping[str, str] | None = None, open_files: int | None = None,
                 client_timeout: float = 300.0) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        args = command(self.port)
        preexec = None if open_files is None else (lambda: _soft_open_files(open_files))
        with log_path.open("wb") as log:
            self.spawn_wall = time.time()
            self.t_spawn = time.perf_counter()
            self.proc: subprocess.Popen[bytes] = subprocess.Popen(
                args, cwd=REPO, env=dict(env) if env is not None else server_env(), stdout=log,
                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=preexec,
            )
        self.client = httpx.Client(base_url=self.url, timeout=client_timeout)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_tail(self, chars: int = 3000) -> str:
        return self.log()[-chars:]

    def check_running(self) -> None:
        """Raise ``ServerExited`` (with the log's end) if the process has ended."""
        if self.proc.poll() is not None:
            raise ServerExited(f"server exited with {self.proc.returncode}:\n{self.log_tail()}")

    def wait_for(self, path: str, accept: Callable[[httpx.Response], bool], timeout: float) -> tuple[float,
                                                                                                     httpx.Response]:
        """Poll ``GET path`` every 20 ms until ``accept`` takes a response (connection errors are
        retried); return seconds since spawn and that response. ``ServerExited`` if the server
        ends, ``TimeoutError`` after ``timeout`` seconds from now."""
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            self.check_running()
            try:
                resp = self.client.get(path, timeout=2.0)
            except httpx.TransportError:
                resp = None
            if resp is not None and accept(resp):
                return time.perf_counter() - self.t_spawn, resp
            time.sleep(POLL_SECONDS)
        raise TimeoutError(f"{path} not as expected after {timeout:g}s:\n{self.log_tail()}")

    def wait_live(self, timeout: float = 60.0) -> float:
        """Seconds from spawn to the first HTTP answer."""
        return self.wait_for("/health/live", lambda _: True, timeout)[0]

    def wait_settled(self, timeout: float = 120.0) -> dict[str, Any]:
        """Wait until no model is loading any more; return that /health body."""
        _, resp = self.wait_for("/health", lambda r: r.json().get("status") != "loading", timeout)
        body: dict[str, Any] = resp.json()
        return body

    def signal_and_wait(self, sig: int, timeout: float = 90.0) -> int:
        """Send ``sig`` to the server alone (not its process group) and return its exit code."""
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        finally:
            self.client.close()

    def stop(self, grace: float = 20.0) -> int:
        """Stop the server and its process group (SIGTERM, then SIGKILL after ``grace``); its exit code."""
        self.client.close()
        kill_group(self.proc, grace)
        return self.proc.returncode


def _soft_open_files(limit: int) -> None:
    """Start the child with a low soft open-file limit (the hard one unchanged), as on many hosts."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))


class Children:
    """Every server a tool started; ``stop_all`` leaves none behind (process groups included)."""

    def __init__(self) -> None:
        self.servers: list[ServerProcess] = []

    def spawn(self, command: Command, log_path: Path, **kwargs: Any) -> ServerProcess:
        server = ServerProcess(command, log_path, **kwargs)
        self.servers.append(server)
        return server

    def stop_all(self, grace: float = 10.0) -> None:
        for server in self.servers:
            server.stop(grace)
        self.servers.clear()


@contextmanager
def interrupts_as_keyboard_interrupt() -> Iterator[None]:
    """SIGTERM/SIGHUP behave like Ctrl-C, so the same cleanup runs for all three."""

    def handler(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def wait_port_free(port: int, timeout: float = 5.0) -> bool:
    """True once nothing listens on 127.0.0.1:port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) != 0:
                return True
        time.sleep(0.05)
    return False
