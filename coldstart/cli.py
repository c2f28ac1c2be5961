"""``python test_cold_start.py``: start the servers (``server_kinds.SERVER_KINDS``) from scratch and time how
they come up."""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import suppress
from pathlib import Path
from typing import Any

from coldstart import page_cache, server_kinds
from coldstart.measure import ServerResult, run_once
from coldstart.processes import Children, interrupts_as_keyboard_interrupt, wait_port_free
from coldstart.report import breakdown, slow_first_requests, summarize, table
from coldstart.server_kinds import ServerKind
from coldstart.targets import ServerTarget, model_files


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="test_cold_start.py",
        description="Start the model servers from scratch and measure time to first answer, to ready "
        "(every model loaded), each model's load time, and time to the first successful inference.",
    )
    kinds = server_kinds.SERVER_KINDS
    p.add_argument("--only", choices=[k.key for k in kinds], help="measure one server (default: all, together)")
    for k in kinds:
        p.add_argument(f"--{k.flag}-config", type=Path, help=f"{k.title} config (default: its embedded models)")
    for k in kinds:
        p.add_argument(f"--{k.flag}-port", type=int, help="default: a free port")
    for k in kinds:
        p.add_argument(f"--{k.flag}-url", help=f"measure the {k.title} running there (started elsewhere, e.g. "
                                               "by docker compose) instead")
    p.add_argument("--target", type=float, default=120.0,
                   help="fail when the slowest time to ready exceeds this many seconds "
                        "(default 120, as the original servers)")
    p.add_argument("--timeout", type=float, help="give up on a server after this long (default: target + 60)")
    p.add_argument("--repeat", type=int, default=1, help="starts per mode; reports median and spread")
    p.add_argument("--sequential", action="store_true",
                   help="also start with one loader worker (A/B against parallel loading, interleaved)")
    p.add_argument("--cold", action="store_true",
                   help="evict the model files from the page cache before each start (posix_fadvise "
                   "DONTNEED on each file)")
    p.add_argument("--json", type=Path, help="write every figure to this file")
    p.add_argument("--chart", type=Path, help="draw the last run's timeline, one bar per model, to this PNG "
                   "(needs matplotlib)")
    p.add_argument("--log-dir", type=Path, help="keep the servers' logs here (default: a temp dir)")
    p.add_argument("--quiet", action="store_true", help="no live progress")
    args = p.parse_args(argv)
    if args.repeat < 1:
        p.error("--repeat must be at least 1")
    external = any(_option(args, k, "url") for k in kinds)
    if external and (args.sequential or args.cold or args.repeat > 1):
        urls = "/".join(f"--{k.flag}-url" for k in kinds)
        p.error(f"--sequential, --cold and --repeat need servers this tool starts (not {urls})")
    return args


def _option(args: argparse.Namespace, kind: ServerKind, option: str) -> Any:
    """The value of ``--FLAG-OPTION`` for this kind."""
    return getattr(args, f"{kind.flag}_{option}")


def build_targets(args: argparse.Namespace) -> list[ServerTarget]:
    """Every server kind, in the table's order; ``--only`` keeps one, and with any ``--FLAG-url``
    only the servers given by URL are measured."""
    kinds = server_kinds.SERVER_KINDS
    external = any(_option(args, k, "url") for k in kinds)
    return [ServerTarget(k, _option(args, k, "config"), _option(args, k, "port"), _option(args, k, "url"))
            for k in kinds
            if args.only in (None, k.key) and (_option(args, k, "url") or not external)]


class Progress:
    """Live progress: on a terminal, a bar per model (from each server's /health/events) under a
    status line, redrawn in place; otherwise a line per change."""

    BAR = 24

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.tty = sys.stdout.isatty()
        self.last = ""
        self.drawn = 0  # lines of the last drawing, redrawn over

    @property
    def draws_bars(self) -> bool:
        """Bars need each server's /health/events; the plain lines need only /health."""
        return self.tty and not self.quiet

    def __call__(self, elapsed: float, results: list[ServerResult]) -> None:
        if self.quiet:
            return
        if self.tty:
            self._draw(elapsed, results)
            return
        parts = []
        for r in results:
            models = ", ".join(f"{n}: {m.get('state')}" for n, m in r.models.items())
            parts.append(f"{r.server} [{r.mode}] {r.status}" + (f" ({models})" if models else ""))
        line = " | ".join(parts)
        if line != self.last:
            print(f"[{elapsed:6.2f}s] {line}", flush=True)
        self.last = line

    def _draw(self, elapsed: float, results: list[ServerResult]) -> None:
        lines = [f"[{elapsed:6.2f}s] " + " | ".join(f"{r.server} [{r.mode}] {r.status}" for r in results)]
        for r in results:
            for name, m in (r.live or r.models).items():
                lines.append("  " + model_bar(f"{r.server}/{name}", m, self.BAR))
        up = f"\x1b[{self.drawn - 1}F" if self.drawn > 1 else "\r"
        sys.stdout.write(up + "\n".join(f"\x1b[2K{line}" for line in lines))
        sys.stdout.flush()
        self.drawn = len(lines)

    def done(self) -> None:
        if self.tty and not self.quiet:
            print()


def model_bar(label: str, model: dict[str, Any], width: int) -> str:
    """One model's load as a bar: ``label [#####-----]  50% loading weights`` (state when not loading)."""
    state = model.get("state", "?")
    progress = model.get("progress")
    if progress is None:
        progress = 1.0 if state == "ready" else 0.0
    filled = round(progress * width)
    what = model.get("phase") or state if state == "loading" else state
    return f"{label:<36} [{'#' * filled}{'-' * (width - filled)}] {progress * 100:3.0f}% {what}"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    targets = build_targets(args)
    timeout = args.timeout or args.target + 60
    modes = ["parallel", "sequential"] if args.sequential else ["parallel"]
    own_log_dir = args.log_dir is None  # a temporary folder, removed at the end unless something failed
    log_dir = args.log_dir or Path(tempfile.mkdtemp(prefix="cold-start-logs-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    children = Children()
    progress = Progress(args.quiet)
    runs: list[list[ServerResult]] = []
    cold_method: str | None = None
    interrupted = False
    try:
        with interrupts_as_keyboard_interrupt():
            for _ in range(args.repeat):
                for mode in modes:  # interleaved: A B A B ...
                    if args.cold:
                        # Only the model files: dropping the whole page cache would also evict every
                        # Python library and make the figure about the disk, not the server.
                        files = [p for t in targets for p in model_files(t)]
                        cold_method = page_cache.evict(files, drop_all=False)
                        print(f"page cache: the model files ({len(files)} paths) evicted ({cold_method})", flush=True)
                    results = run_once(targets, mode, children, log_dir, timeout, progress,
                                       watch_events=progress.draws_bars)
                    progress.done()
                    runs.append(results)
                    ports = [int(r.url.rsplit(":", 1)[1]) for r in results if r.pid]
                    children.stop_all()
                    for port in ports:
                        wait_port_free(port)
    except KeyboardInterrupt:
        interrupted = True
        progress.done()
        print("interrupted: stopping the servers", file=sys.stderr)
    finally:
        children.stop_all()

    summary = summarize(runs)
    failures = _failures(runs, args.target)
    if interrupted:
        failures.append("interrupted")
    if runs:
        print(table(summary, args.repeat))
        for r in runs[-1]:
            lines = breakdown(r)
            if lines:
                print(lines)
    warnings = [w for r in (runs[-1] if runs else []) for w in slow_first_requests(r)]
    for w in warnings:
        print(f"SLOW FIRST REQUEST: {w}", file=sys.stderr)
    for f in failures:
        print(f"FAIL: {f}", file=sys.stderr)
    passed = not failures
    # The logs are kept (and named) after a failure, unless no server was started (nothing to read).
    keep_logs = not (own_log_dir and passed) and any(log_dir.iterdir())
    if not keep_logs:
        shutil.rmtree(log_dir, ignore_errors=True)
    if args.json:
        report: dict[str, Any] = {
            "passed": passed, "failures": failures, "target_s": args.target, "repeat": args.repeat,
            "modes": modes, "cold": args.cold, "cold_method": cold_method,
            "log_dir": str(log_dir) if keep_logs else None, "warnings": warnings,
            "created": time.time(), "machine": machine(), "commit": commit(), "summary": summary,
            "runs": [[r.to_dict() for r in run] for run in runs],
        }
        args.json.write_text(json.dumps(report, indent=2))
    if args.chart and runs:
        try:
            from coldstart.chart import draw

            print(f"timeline chart: {draw(runs[-1], args.chart)}")
        except ImportError:
            print("--chart needs matplotlib: pip install matplotlib", file=sys.stderr)
        except ValueError as exc:
            print(f"--chart: {exc}", file=sys.stderr)
    if keep_logs and not passed:
        print(f"server logs kept in {log_dir}", file=sys.stderr)
    if interrupted:
        return 130
    print(f"{'PASS' if passed else 'FAILED'}: {slowest(runs)} (target: every server ready within {args.target:g}s)")
    return 0 if passed else 1


def slowest(runs: list[list[ServerResult]]) -> str:
    """The slowest time to ready, and whose, for the verdict line."""
    ready = [(r.ready_s, r.server) for run in runs for r in run if r.ready_s is not None]
    if not ready:
        return "no server became ready"
    seconds, server = max(ready)
    if all(r.mode == "running" for run in runs for r in run):
        return (f"the servers were already running: they answered and were ready {seconds:.2f} s after the first "
                f"poll ({server}); a time to answer, not a start")
    return f"slowest ready {seconds:.2f} s ({server})"


def _proc_line(path: str, prefix: str) -> str | None:
    """The value after the first line of ``path`` starting with ``prefix`` (e.g. /proc/cpuinfo)."""
    with suppress(OSError), open(path) as f:
        for line in f:
            if line.startswith(prefix):
                return line.split(":", 1)[1].strip()
    return None


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    mem = _proc_line("/proc/meminfo", "MemTotal")
    return {"host": platform.node(), "cpu": _proc_line("/proc/cpuinfo", "model name"), "cpus": os.cpu_count(),
            "memory_bytes": int(mem.split()[0]) * 1024 if mem else None, "kernel": platform.release(),
            "python": platform.python_version(), "loadavg": os.getloadavg()}


def commit() -> str | None:
    """This checkout's commit (with "+dirty" when it has uncommitted changes), if it is a git checkout."""
    repo = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo,
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if head.returncode != 0:
        return None
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def _failures(runs: list[list[ServerResult]], target: float) -> list[str]:
    failures = []
    for run in runs:
        for r in run:
            if r.status != "ready":
                failures.append(f"{r.server} ({r.mode}): {r.status}: {r.error}")
            elif r.ready_s is not None and r.ready_s > target:
                failures.append(f"{r.server} ({r.mode}): ready after {r.ready_s:.2f}s, above the target of {target:g}s")
    return failures
