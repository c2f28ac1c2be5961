"""Two GGUF replicas behind a real load balancer (HAProxy, loopback ports only), clients streaming
through it; one replica gets SIGTERM mid-load, then starts again. What a rolling restart or a
scale-in looks like from the clients' side.

    python scripts/replica_failover.py [--clients 16] [--phase-seconds 10] [--json out.json]

Phases: steady (both replicas), event (SIGTERM to replica b until it has exited: its drain turns
/health/ready 503, HAProxy's check takes it out, running streams finish), without (replica a
alone), rejoin (b started again on its port until HAProxy sends it requests), after (both). Every
request is a streamed ``/v1/completions``; a failure is anything but a 200 stream that ends with
``[DONE]``. Reported: requests and failures per phase and replica, p50/p99 latency per phase, and
p99 during the event ÷ p99 steady. Exit status 1 if a request failed or b never rejoined.

HAProxy retries a request that found no server or got a 503 before any byte of an answer
(``retry-on``): the few requests that reach b between its SIGTERM and the next health check get
the drain's 503 and go to a instead. Needs ``haproxy`` (Debian package; scripts/install-test-deps.sh).
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from coldstart.processes import ServerProcess, free_port, module_command, server_env  # noqa: E402

MODEL = "gemma-3-270m"  # the embedded completion model: one per replica keeps two replicas light
PROMPTS = ["The capital of France is", "Once upon a time", "The best way to learn", "Water boils at"]

HAPROXY_CFG = """\
global
    maxconn 512
defaults
    mode http
    timeout connect 2s
    timeout client 300s
    timeout server 300s
    timeout queue 60s
    # A request that found no server, or got a 503 before any byte of an answer (a draining
    # replica), is sent again, to the other replica.
    option http-buffer-request
    retries 3
    option redispatch 1
    retry-on conn-failure empty-response response-timeout 503
frontend clients
    bind 127.0.0.1:{port}
    default_backend replicas
backend replicas
    balance leastconn
    option httpchk GET /health/ready
    http-check expect status 200
    default-server inter 250ms fall 1 rise 2
    http-response set-header X-Replica %s
    server a 127.0.0.1:{a} check
    server b 127.0.0.1:{b} check
"""


@dataclass
class Outcome:
    started: float  # seconds since the run began
    seconds: float
    phase: str
    replica: str | None
    error: str | None = None


@dataclass
class Run:
    t0: float = field(default_factory=time.perf_counter)
    phase: str = "steady"
    outcomes: list[Outcome] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def now(self) -> float:
        return time.perf_counter() - self.t0


def haproxy_binary() -> str:
    found = shutil.which("haproxy") or ("/usr/sbin/haproxy" if Path("/usr/sbin/haproxy").exists() else None)
    if found is None:
        sys.exit("haproxy is not installed: apt-get install -y haproxy (or bash scripts/install-test-deps.sh)")
    return found


def replica(port: int, config: Path, log_dir: Path, name: str) -> ServerProcess:
    log = log_dir / f"replica-{name}-{int(time.time() * 1000)}.log"
    # Each replica decodes on one core: two of them share the machine's two without fighting.
    env = server_env({"GGUF_COMPUTE_SLOTS": "1"})
    return ServerProcess(module_command("gguf_model_server", config), log, port=port, env=env)


def client_loop(url: str, run: Run, index: int) -> None:
    with httpx.Client(base_url=url, timeout=httpx.Timeout(300, connect=5)) as client:
        n = 0
        while not run.stop.is_set():
            body = {"model": MODEL, "prompt": PROMPTS[(index + n) % len(PROMPTS)], "max_tokens": 16,
                    "temperature": 0.0, "stream": True}
            phase, started = run.phase, run.now()
            replica_name, error = None, None
            try:
                with client.stream("POST", "/v1/completions", json=body) as r:
                    replica_name = r.headers.get("x-replica")
                    if r.status_code != 200:
                        r.read()
                        error = f"{r.status_code}: {r.text[:200]}"
                    else:
                        lines = [line for line in r.iter_lines() if line.startswith("data: ")]
                        if not lines or lines[-1] != "data: [DONE]":
                            error = f"stream ended without [DONE] after {len(lines)} events"
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}"
            with run.lock:
                run.outcomes.append(Outcome(started, run.now() - started, phase, replica_name, error))
            n += 1


def wait_until(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.05)


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def report(run: Run, rejoined: bool, exit_code: int | None) -> dict[str, Any]:
    phases: dict[str, Any] = {}
    for phase in ("steady", "event", "without", "rejoin", "after"):
        mine = [o for o in run.outcomes if o.phase == phase]
        ok = [o.seconds for o in mine if o.error is None]
        by_replica: dict[str, int] = {}
        for o in mine:
            by_replica[o.replica or "none"] = by_replica.get(o.replica or "none", 0) + 1
        phases[phase] = {"requests": len(mine), "failures": sum(o.error is not None for o in mine),
                         "by_replica": by_replica, "p50": percentile(ok, 50), "p99": percentile(ok, 99)}
    failures = [o for o in run.outcomes if o.error is not None]
    # "During the event": from the SIGTERM until b serves again (one replica carries the load).
    during = percentile([o.seconds for o in run.outcomes
                         if o.phase in ("event", "without", "rejoin") and o.error is None], 99)
    steady = phases["steady"]["p99"]
    return {"requests": len(run.outcomes), "failures": len(failures),
            "failure_samples": [f"{o.phase}: {o.error}" for o in failures[:10]],
            "phases": phases, "p99_steady": steady, "p99_during_event": during,
            "p99_during_event_over_steady": (during / steady) if steady and during else None,
            "replica_b_rejoined": rejoined, "replica_b_exit_code": exit_code}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--phase-seconds", type=float, default=10.0, help="length of the steady, without and after phases")
    p.add_argument("--json", type=Path, help="write the report here")
    p.add_argument("--log-dir", type=Path, help="keep the replicas' and HAProxy's logs here")
    args = p.parse_args(argv)
    log_dir = args.log_dir or Path(tempfile.mkdtemp(prefix="failover-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    config = log_dir / "replica.yaml"
    config.write_text(json.dumps({"models": [{"name": MODEL, "backend": "llama_cpp",
                                              "options": {"parallel": 4, "n_ctx": 512}}]}))
    port_a, port_b, port_lb = free_port(), free_port(), free_port()
    cfg = log_dir / "haproxy.cfg"
    cfg.write_text(HAPROXY_CFG.format(port=port_lb, a=port_a, b=port_b))
    subprocess.run([haproxy_binary(), "-c", "-q", "-f", str(cfg)], check=True)

    servers = {"a": replica(port_a, config, log_dir, "a"), "b": replica(port_b, config, log_dir, "b")}
    lb_log = (log_dir / "haproxy.log").open("wb")
    lb = subprocess.Popen([haproxy_binary(), "-db", "-f", str(cfg)], stdout=lb_log, stderr=subprocess.STDOUT)
    run = Run()
    threads: list[threading.Thread] = []
    rejoined, exit_code = False, None
    try:
        for s in servers.values():
            s.wait_for("/health/ready", lambda r: r.status_code == 200, 180)
        url = f"http://127.0.0.1:{port_lb}"
        wait_until(lambda: _both_up(url), 30, "HAProxy never saw both replicas up")
        run.t0 = time.perf_counter()
        threads = [threading.Thread(target=client_loop, args=(url, run, i), daemon=True) for i in range(args.clients)]
        for th in threads:
            th.start()
        time.sleep(args.phase_seconds)

        print(f"[{run.now():6.1f}s] SIGTERM to replica b", flush=True)
        run.phase = "event"
        exit_code = servers["b"].signal_and_wait(signal.SIGTERM, timeout=120)
        print(f"[{run.now():6.1f}s] replica b exited with {exit_code}", flush=True)
        run.phase = "without"
        time.sleep(args.phase_seconds)

        print(f"[{run.now():6.1f}s] replica b starts again", flush=True)
        run.phase = "rejoin"
        servers["b"] = replica(port_b, config, log_dir, "b")
        seen = len(run.outcomes)
        wait_until(lambda: any(o.replica == "b" for o in run.outcomes[seen:]), 180, "replica b never rejoined")
        rejoined = True
        print(f"[{run.now():6.1f}s] replica b serves again", flush=True)
        run.phase = "after"
        time.sleep(args.phase_seconds)
    finally:
        run.stop.set()
        for th in threads:
            th.join(120)
        lb.terminate()
        lb.wait(10)
        lb_log.close()
        for s in servers.values():
            s.stop()
    out = report(run, rejoined, exit_code)
    print(json.dumps(out, indent=2))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    return 0 if out["failures"] == 0 and rejoined else 1


def _both_up(url: str) -> bool:
    """Both replicas answered through the balancer (its checks marked them up)."""
    seen = set()
    with httpx.Client(base_url=url, timeout=30) as client:
        for _ in range(8):
            try:
                r = client.get("/health/ready")
            except httpx.HTTPError:
                return False
            seen.add(r.headers.get("x-replica"))
    return {"a", "b"} <= seen


if __name__ == "__main__":
    raise SystemExit(main())
