"""One cold start: spawn the servers together, poll /health, run the first requests, time it all."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from coldstart.processes import POLL_SECONDS, Children, ServerProcess, server_env
from coldstart.targets import ServerTarget, first_inference, first_request_per_model, model_files_by_model, size_of

REFUSED_GRACE_SECONDS = 10.0  # a server started elsewhere (e.g. just now by Compose) gets this long to listen


@dataclass
class ServerResult:
    """Everything measured for one server in one start. Times are seconds from spawn."""

    server: str
    mode: str
    url: str
    pid: int | None = None
    live_s: float | None = None  # first HTTP answer
    ready_s: float | None = None  # /health 200 with no model loading
    first_inference_s: float | None = None  # ready + the first tiny requests answered
    first_request_latency: dict[str, float] = field(default_factory=dict)
    model_first_request_s: dict[str, float] = field(default_factory=dict)  # each model's first request
    model_bytes: dict[str, int] = field(default_factory=dict)
    startup: dict[str, Any] | None = None  # the server's /health/startup: where its start-up time went
    spawn_wall: float | None = None  # time.time() when the tool spawned it
    models: dict[str, dict[str, Any]] = field(default_factory=dict)
    status: str = "starting"
    error: str | None = None
    log_path: str | None = None
    # Each model's latest ``model`` event from /health/events (state, progress, phase): the live bars.
    live: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def run_once(
    targets: list[ServerTarget],
    mode: str,
    children: Children,
    log_dir: Path,
    timeout: float,
    progress: Callable[[float, list[ServerResult]], None],
    watch_events: bool = False,
) -> list[ServerResult]:
    """Start (or attach to) every target at once and follow them until each is done or failed;
    ``watch_events``: also follow each server's /health/events into ``live`` (the progress bars: one
    more client during the start, so only when something draws them)."""
    results: list[ServerResult] = []
    servers: dict[str, ServerProcess] = {}
    # Read before anything starts: it imports settings code (~0.3 s) that must not delay a spawn.
    sizes = {t.key: _model_bytes(t) for t in targets if not t.url}
    t0 = time.perf_counter()
    for target in targets:
        if target.url:
            # Already running: what is measured is the time to answer, not a start.
            results.append(ServerResult(target.key, "running", target.url.rstrip("/")))
            continue
        # The user's server settings variables apply (the tool measures their servers); ports are the tool's.
        env = server_env(target.extra_env, keep_settings=True)
        if mode == "sequential":
            env[f"{target.env_prefix}LOADER_WORKERS"] = "1"
        # Whoever runs the tool owns the servers it starts: failures name the full path.
        env.setdefault(f"{target.env_prefix}SHOW_PATHS_IN_ERRORS", "true")
        log_path = log_dir / f"{target.key}-{mode}-{int(time.time() * 1000)}.log"
        server = children.spawn(target.command(), log_path, port=target.port, env=env, client_timeout=timeout)
        servers[target.key] = server
        results.append(ServerResult(target.key, mode, server.url, pid=server.pid, log_path=str(log_path),
                                    spawn_wall=server.spawn_wall, model_bytes=sizes[target.key]))
        print(f"spawned {target.key} ({mode}) pid {server.pid} on port {server.port}, log {log_path}", flush=True)
    target_of = {t.key: t for t in targets}
    # Each spawned server's times count from its own spawn; an attached one's from now.
    origin = {r.server: servers[r.server].t_spawn if r.server in servers else t0 for r in results}
    threads = [threading.Thread(target=_follow, args=(r, servers.get(r.server), target_of[r.server], origin[r.server],
                                                      timeout, watch_events), name=f"follow-{r.server}", daemon=True)
               for r in results]
    for th in threads:
        th.start()
    # Each server is followed in its own thread, so one server's slow first request never delays
    # the polling of the other.
    while any(th.is_alive() for th in threads):
        progress(time.perf_counter() - t0, results)
        time.sleep(0.1)
    progress(time.perf_counter() - t0, results)
    return results


def _model_bytes(target: ServerTarget) -> dict[str, int]:
    """Each model's weight bytes; none for a configuration the server itself will refuse (and report)."""
    from serving_core.settings import ConfigError

    try:
        return {name: size_of(paths) for name, paths in model_files_by_model(target).items()}
    except ConfigError:
        return {}


def _watch_events(r: ServerResult) -> None:
    """Follow the server's /health/events (load progress as it happens) into ``r.live`` until the
    stream ends (every model settled); the readiness figures come from polling /health, not from it."""
    with suppress(httpx.HTTPError), httpx.stream("GET", f"{r.url}/health/events",
                                                 timeout=httpx.Timeout(None, connect=2.0)) as resp:
        if resp.status_code != 200:
            return
        for line in resp.iter_lines():
            if line.startswith("data: "):
                with suppress(ValueError):
                    event = json.loads(line[6:])
                    if "model" in event:
                        r.live[event["model"]] = event


def _follow(r: ServerResult, server: ServerProcess | None, target: ServerTarget, t0: float, timeout: float,
            watch_events: bool = False) -> None:
    with httpx.Client(base_url=r.url, timeout=httpx.Timeout(timeout, connect=1.0)) as client:
        watching = not watch_events
        while r.status in ("starting", "loading", "first requests"):
            if r.live_s is not None and not watching:
                watching = True
                threading.Thread(target=_watch_events, args=(r,), name=f"events-{r.server}", daemon=True).start()
            if server is not None and server.proc.poll() is not None:
                r.status = "died"
                r.error = f"server exited with code {server.proc.returncode}:\n{_tail(Path(r.log_path or ''))}"
                return
            if time.perf_counter() - t0 > timeout:
                r.status = "timeout"
                r.error = f"not ready after {timeout:.0f}s"
                return
            _poll(r, client, t0, target, attached=server is None)
            time.sleep(POLL_SECONDS)


def _poll(r: ServerResult, client: httpx.Client, t0: float, target: ServerTarget, attached: bool) -> None:
    try:
        resp = client.get("/health", timeout=2.0)
    except httpx.ConnectError as exc:
        if attached and r.live_s is None and time.perf_counter() - t0 > REFUSED_GRACE_SECONDS:
            # A server started elsewhere is listening within seconds or not at all: a refused
            # connection is reported as such, not waited out as a slow start.
            r.status = "refused"
            r.error = (f"nothing answers at {r.url} after {REFUSED_GRACE_SECONDS:g} s ({exc}); is the server "
                       "running on that address and port?")
        return
    except httpx.TransportError:
        return
    now = time.perf_counter() - t0
    if r.live_s is None:
        r.live_s = now
    try:
        body = resp.json()
    except ValueError:
        return
    r.models = body.get("models", {})
    r.status = "loading"
    if body.get("status") == "loading":
        return
    failed = {n: m.get("error") for n, m in r.models.items() if m.get("state") != "ready"}
    if failed:
        r.status = "failed"
        r.error = "; ".join(f"model '{n}' failed: {e}" for n, e in failed.items())
        r.ready_s = now
        return
    r.ready_s = now
    # Loading is over: the live line says what the tool waits for now (it said "loading" until
    # the first requests were answered, seconds after the table's "ready").
    r.status = "first requests"
    try:
        # Each model's own first request first (its one-time costs: the first decode, Whisper's first
        # encoder pass, ONNX's first run); then the routes a user calls, now warm. "First inference"
        # is when every model has answered.
        r.model_first_request_s = first_request_per_model(client, target.kind, r.models)
        r.first_inference_s = time.perf_counter() - t0
        r.first_request_latency = first_inference(client, target.kind, r.models)
        r.status = "ready"
    except (RuntimeError, httpx.HTTPError) as exc:
        r.status = "failed"
        r.error = f"first inference failed: {exc}"
        return
    with suppress(httpx.HTTPError, ValueError):
        startup = client.get("/health/startup", timeout=5.0)
        if startup.status_code == 200:
            r.startup = startup.json()
