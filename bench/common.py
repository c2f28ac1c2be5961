"""Shared helpers for the benchmarks in bench/.

Method (project standard, see docs/BENCHMARKS.md): every benchmark reports a
RATIO ours ÷ baseline measured in the same run, interleaved round by round (baseline, ours,
baseline, ours, …), the median of ``--runs`` rounds (default 5) after ``--warmup`` discarded
rounds (default 1). The headline ratio is the MEDIAN OF PER-ROUND RATIOS (each round pairs a
baseline and an ours measured seconds apart); the ratio of medians is printed next to it.
Absolute times are printed for context only and never asserted.

Everything started here binds 127.0.0.1 on a free port, runs in its own session and is killed
(process group) in a ``finally``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
# This checkout's packages, not whichever checkout an editable install points at.
sys.path.insert(0, str(REPO))

from coldstart import page_cache  # noqa: E402
from coldstart.processes import Command, ServerProcess, kill_group, module_command, server_env  # noqa: E402
from coldstart.server_kinds import by_key  # noqa: E402
from model_store.embedded import DEFAULT_MODEL_NAME, embedded_model_path  # noqa: E402

GGUF = by_key("gguf")
ASR_OCR = by_key("asr_ocr")
RESULTS = BENCH / "results"
INPROC = BENCH / "inproc.py"
GEMMA = embedded_model_path(DEFAULT_MODEL_NAME)
PY = sys.executable


# ------------------------------------------------------------------ processes


def base_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Benchmarked servers run on exactly the configuration a benchmark passes (no inherited settings)."""
    return server_env(extra)


def healthy(resp: httpx.Response) -> bool:
    """/health readiness: 200 with status "healthy"; 200 "degraded" means a model failed (an error here)."""
    if resp.status_code != 200:
        return False
    status = resp.json().get("status")
    if status != "healthy":
        raise RuntimeError(f"server is {status!r}, not healthy: {resp.text[:500]}")
    return True


def status_200(resp: httpx.Response) -> bool:
    return resp.status_code == 200


class Server(ServerProcess):
    """A benchmarked server: the shared launcher plus the last readiness body it answered."""

    last_body: Any = None

    def wait_ready(self, path: str = "/health", ready: Callable[[httpx.Response], bool] = healthy,
                   timeout: float = 300.0) -> float:
        """Seconds from spawn to the first response of ``path`` that ``ready`` accepts."""
        seconds, resp = self.wait_for(path, ready, timeout)
        with contextlib.suppress(ValueError):
            self.last_body = resp.json()
        return seconds

    def load_seconds(self) -> dict[str, float]:
        """Per-model load_seconds from the last /health body (what the server says its loads took)."""
        models = (self.last_body or {}).get("models", {}) if isinstance(self.last_body, dict) else {}
        return {name: m.get("load_seconds") for name, m in models.items()}


@contextlib.contextmanager
def running(cmd: Command, env: dict[str, str] | None = None) -> Iterator[Server]:
    """Start ``cmd(port)`` with its output in a temp log; always stop it (process group) afterwards."""
    with tempfile.NamedTemporaryFile(prefix="bench-server-", suffix=".log", delete=False) as log:
        log_path = Path(log.name)
    server = Server(cmd, log_path, env=base_env(env))
    try:
        yield server
    finally:
        server.stop(grace=10)
        log_path.unlink(missing_ok=True)


def spawn_to_ready(cmd: Command, env: dict[str, str] | None = None, path: str = "/health",
                   ready: Callable[[httpx.Response], bool] = healthy,
                   after: Callable[[Server], Any] | None = None) -> dict[str, Any]:
    """One cold start: spawn, wait ready, optionally run ``after(server)``, kill. Returns timings."""
    with running(cmd, env) as srv:
        seconds = srv.wait_ready(path, ready)
        out: dict[str, Any] = {"seconds": seconds, "load_seconds": srv.load_seconds()}
        if after is not None:
            out["after"] = after(srv)
        return out


def gguf_cmd(config: Path | None = None) -> Command:
    return module_command(GGUF.module, config)


asr_ocr_cmd = module_command(ASR_OCR.module)


def llama_server_cmd(model: Path, n_ctx: int = 2048) -> Command:
    def build(port: int) -> list[str]:
        return [PY, "-m", "llama_cpp.server", "--model", str(model), "--n_ctx", str(n_ctx),
                "--host", "127.0.0.1", "--port", str(port)]
    return build


def write_gguf_config(directory: Path, models: dict[str, Path], n_ctx: int = 2048) -> Path:
    """A GGUF server YAML config (JSON is valid YAML) serving ``{name: path}``."""
    path = Path(directory) / f"gguf-{'-'.join(models)}.yaml"
    body = {"models": [{"name": n, "backend": "llama_cpp", "path": str(p), "options": {"n_ctx": n_ctx}}
                       for n, p in models.items()]}
    path.write_text(json.dumps(body, indent=1))
    return path


@contextlib.contextmanager
def gguf_configs(*model_maps: dict[str, Path]) -> Iterator[list[Path]]:
    """One temporary config file per ``{name: path}`` map, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="bench-config-") as tmp:
        yield [write_gguf_config(Path(tmp), m) for m in model_maps]


@contextlib.contextmanager
def copies_config(n: int = 3) -> Iterator[tuple[list[Path], Path]]:
    """``n`` distinct copies of the Gemma file and a config serving them as gemma-a, gemma-b, …"""
    with model_copies(n) as paths, gguf_configs(named(paths)) as (config,):
        yield paths, config


def named(paths: Sequence[Path], prefix: str = "gemma") -> dict[str, Path]:
    """``{gemma-a: paths[0], gemma-b: paths[1], …}``."""
    return {f"{prefix}-{chr(ord('a') + i)}": Path(p) for i, p in enumerate(paths)}


def time_process(cmd: list[str], timeout: float = 300.0) -> float:
    """Wall time of a fresh process from spawn to exit (it must succeed)."""
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=REPO, env=base_env(), check=True, stdin=subprocess.DEVNULL,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=timeout, start_new_session=True)
    return time.perf_counter() - t0


def import_time(modules: Sequence[str]) -> float:
    """Fresh-process ``python -c "import a, b, …"`` wall time (interpreter start included)."""
    return time_process([PY, "-c", "import " + ", ".join(modules)])


def inproc_json(*args: str, timeout: float = 300.0) -> dict[str, Any]:
    """Run ``bench/inproc.py ARGS`` in a fresh process; return the JSON object it prints."""
    res = subprocess.run([PY, str(INPROC), *args], cwd=REPO, env=base_env(), capture_output=True, text=True,
                         stdin=subprocess.DEVNULL, timeout=timeout, start_new_session=True)
    if res.returncode != 0:
        raise RuntimeError(f"inproc.py {' '.join(args)} failed ({res.returncode}):\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


class Worker:
    """A long-lived ``bench/inproc.py`` child answering one JSON line per JSON-line request."""

    def __init__(self, *args: str) -> None:
        self._log = tempfile.TemporaryFile(prefix="bench-worker-")  # noqa: SIM115 - closed in close()
        self.proc = subprocess.Popen([PY, str(INPROC), *args], cwd=REPO, env=base_env(), stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self._log, text=True, bufsize=1,
                                     start_new_session=True)
        self.hello = self._read()

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait(10)
            self._log.seek(0)
            err = self._log.read().decode(errors="replace")[-3000:]
            raise RuntimeError(f"worker exited with {self.proc.returncode}:\n{err}")
        return json.loads(line)  # type: ignore[no-any-return]

    def call(self, **request: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            if self.proc.stdin is not None:
                self.proc.stdin.close()
        kill_group(self.proc, grace=5)
        self._log.close()

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


# ------------------------------------------------------------------ the fleet model pack

FLEET_CONFIG = REPO / "configs" / "fleet.yaml"
FLEET_MODELS = ("qwen2.5-1.5b-instruct", "qwen2.5-0.5b-instruct", "gemma-3-270m")


def fleet_files() -> list[Path]:
    """The fleet config's GGUF files; exits with the install command when the pack is missing."""
    from coldstart.targets import ServerTarget, model_files

    files = model_files(ServerTarget(GGUF, FLEET_CONFIG))
    missing = [f for f in files if not f.is_file()]
    if missing:
        raise SystemExit(f"missing {missing}: run `python -m model_store install fleet` first")
    return files


@contextlib.contextmanager
def fleet_variant_configs(variants: dict[str, dict[str, Any]]) -> Iterator[dict[str, Path]]:
    """The fleet config once per variant, with the variant's options on every model (temp files)."""
    import yaml

    base = yaml.safe_load(FLEET_CONFIG.read_text())
    base["model_dir"] = str(Path(base["model_dir"]).expanduser())
    with tempfile.TemporaryDirectory(prefix="bench-fleet-") as tmp:
        out = {}
        for i, (name, options) in enumerate(variants.items()):
            cfg = {**base, "models": [{**m, "options": {**m.get("options", {}), **options}} for m in base["models"]]}
            path = Path(tmp) / f"fleet-{i}.yaml"
            path.write_text(yaml.safe_dump(cfg))
            out[name] = path
        yield out


def interleave_fleet_variants(args: argparse.Namespace, variants: dict[str, dict[str, Any]],
                              start: Callable[[Path, list[Path]], dict[str, Any]]) -> dict[str, list[Any]]:
    """``start(config, files)`` for each variant's fleet config, interleaved round by round."""
    files = fleet_files()
    with fleet_variant_configs(variants) as configs:
        return interleave(args.runs, args.warmup, {name: (lambda c=c: start(c, files)) for name, c in configs.items()})


def ready_and_peak_rss(res: dict[str, list[Any]], base: str, other: str) -> list[Comparison]:
    """spawn → ready and peak RSS (``VmHWM``, MB) of ``other`` against ``base``."""
    return [compare(res, base, other, None, "spawn→ready (warm)"),
            Comparison("peak RSS (VmHWM)", "MB", base, [r["VmHWM"] for r in res[base]], other,
                       [r["VmHWM"] for r in res[other]], None)]


def first_tokens(srv: Server, models: Sequence[str] = FLEET_MODELS) -> dict[str, tuple[float, float]]:
    """One 1-token completion per model, in turn (the cold-start tool's per-model probe):
    {model: (its latency, seconds since spawn at its end)}."""
    from coldstart.targets import first_request_per_model

    start = time.perf_counter() - srv.t_spawn
    latencies = first_request_per_model(srv.client, GGUF, {m: {"state": "ready"} for m in models})
    out, elapsed = {}, start
    for model in models:
        elapsed += latencies[model]
        out[model] = (latencies[model], elapsed)
    return out


# ------------------------------------------------------------------ page cache and model copies


def evict(paths: Sequence[Path]) -> None:
    """Drop these files (only) from the page cache: ``sync; echo 3 > /proc/sys/vm/drop_caches``
    would also evict every Python library and make the numbers about the disk, not the server."""
    page_cache.evict(paths, drop_all=False)


def warm(paths: Sequence[Path]) -> None:
    """Read these files once so they are in the page cache."""
    for p in paths:
        with open(p, "rb", buffering=0) as fh:
            while fh.read(16 << 20):
                pass


def set_cache(paths: Sequence[Path], cold: bool) -> None:
    (evict if cold else warm)(paths)


@contextlib.contextmanager
def model_copies(n: int, source: Path = GEMMA) -> Iterator[list[Path]]:
    """``n`` distinct copies (own inodes, nothing shared) of ``source`` in a temp dir, removed afterwards."""
    if not source.is_file():
        raise SystemExit(f"model file not found: {source} (run `python -m model_store embedded`)")
    tmp = Path(tempfile.mkdtemp(prefix="bench-models-"))
    try:
        paths = []
        for i in range(n):
            dst = tmp / f"copy{i}-{source.name}"
            shutil.copyfile(source, dst)
            paths.append(dst)
        os.sync()
        yield paths
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ------------------------------------------------------------------ HTTP helpers


def generate(client: httpx.Client, model: str | None, prompt: str = "The capital of France is",
             max_tokens: int = 128, seed: int = 1234) -> dict[str, Any]:
    """POST /generate (temperature 0, fixed seed); returns {status, seconds, completion_tokens, body}."""
    payload: dict[str, Any] = {"prompt": prompt, "max_tokens": max_tokens, "temperature": 0.0, "seed": seed}
    if model is not None:
        payload["model"] = model
    t0 = time.perf_counter()
    try:
        resp = client.post("/generate", json=payload)
    except httpx.HTTPError as exc:
        return {"status": None, "seconds": time.perf_counter() - t0, "completion_tokens": 0, "error": repr(exc)}
    seconds = time.perf_counter() - t0
    body = resp.json() if resp.headers.get("content-type", "").startswith("application/json") else resp.text
    tokens = body["usage"]["completion_tokens"] if resp.status_code == 200 else 0
    return {"status": resp.status_code, "seconds": seconds, "completion_tokens": tokens, "body": body}


def read_proc_status(pid: int) -> dict[str, int]:
    """VmRSS/VmHWM/RssAnon/RssFile (kB) from /proc/PID/status and Pss (kB) from smaps_rollup."""
    out: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
            out[key] = int(rest.split()[0])
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                out["Pss"] = int(line.split()[1])
    return out


# ------------------------------------------------------------------ statistics and the driver


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile, q in [0, 100]."""
    xs = sorted(values)
    if not xs:
        return float("nan")
    pos = (len(xs) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def spread(values: Sequence[float]) -> dict[str, Any]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values),
            "values": [round(v, 6) for v in values]}


def interleave(runs: int, warmup: int, measures: dict[str, Callable[[], Any]],
               pause: float = 0.0) -> dict[str, list[Any]]:
    """Call each measure once per round, in the given order (A B A B …); drop the ``warmup`` rounds."""
    out: dict[str, list[Any]] = {name: [] for name in measures}
    for r in range(warmup + runs):
        tag = f"warmup {r + 1}/{warmup}" if r < warmup else f"run {r - warmup + 1}/{runs}"
        for name, fn in measures.items():
            value = fn()
            if pause:
                time.sleep(pause)
            shown = value.get("value") if isinstance(value, dict) else value
            print(f"  [{tag}] {name}: {_fmt(shown) if isinstance(shown, float) else 'done'}", flush=True)
            if r >= warmup:
                out[name].append(value)
    return out


def values_of(results: list[Any], key: str = "value") -> list[float]:
    return [r[key] if isinstance(r, dict) else r for r in results]


@dataclass
class Comparison:
    """ours ÷ baseline, paired by round. ``higher_is_better`` refers to the ratio (e.g. tokens/s)."""

    metric: str
    unit: str
    baseline_label: str
    baseline: list[float]
    ours_label: str
    ours: list[float]
    target: float | None  # None: report only
    higher_is_better: bool = False
    per_round: list[float] = field(init=False)

    def __post_init__(self) -> None:
        self.per_round = [o / b for o, b in zip(self.ours, self.baseline, strict=True)]

    @property
    def ratio(self) -> float:
        return statistics.median(self.per_round)

    @property
    def ratio_of_medians(self) -> float:
        return statistics.median(self.ours) / statistics.median(self.baseline)

    @property
    def meets_target(self) -> bool | None:
        if self.target is None:
            return None
        return self.ratio >= self.target if self.higher_is_better else self.ratio <= self.target

    @property
    def target_text(self) -> str:
        return "no target" if self.target is None else f"{'>=' if self.higher_is_better else '<='} {self.target}"

    def as_dict(self) -> dict[str, Any]:
        return {"metric": self.metric, "unit": self.unit,
                "baseline_label": self.baseline_label, "baseline": spread(self.baseline),
                "ours_label": self.ours_label, "ours": spread(self.ours),
                "ratio": round(self.ratio, 4), "ratio_method": "median of per-round ratios ours/baseline",
                "ratio_of_medians": round(self.ratio_of_medians, 4),
                "per_round_ratios": [round(x, 4) for x in self.per_round],
                "target": self.target_text,
                "meets_target": self.meets_target}


def parser(description: str | None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=5, help="measured rounds (median of these); default 5")
    p.add_argument("--warmup", type=int, default=1, help="discarded rounds before measuring; default 1")
    return p


def _fmt(v: float) -> str:
    return f"{v:.4g}"


def report(name: str, args: argparse.Namespace, comparisons: list[Comparison],
           extra: dict[str, Any] | None = None, notes: str = "") -> dict[str, Any]:
    """Print the result table and append the record to bench/results/NAME.json (a JSON list)."""
    smoke = ", SMOKE: fewer than 5 runs" if args.runs < 5 else ""
    print(f"\n== {name}  (runs={args.runs}, warmup={args.warmup}{smoke})")
    print("   ratio = median of per-round ratios ours/baseline (ratio of medians in brackets)")
    rows = [("metric", "what", "median", "min", "max", "n")]
    for c in comparisons:
        for label, vals in ((c.baseline_label, c.baseline), (c.ours_label, c.ours)):
            rows.append((c.metric, label, f"{_fmt(statistics.median(vals))} {c.unit}", _fmt(min(vals)),
                         _fmt(max(vals)), str(len(vals))))
        verdict = {True: ": meets target", False: ": MISSES target", None: " (report only)"}[c.meets_target]
        rows.append((c.metric, "RATIO ours/baseline", f"{c.ratio:.3f} [{c.ratio_of_medians:.3f}]",
                     f"{min(c.per_round):.3f}", f"{max(c.per_round):.3f}", f"target {c.target_text}{verdict}"))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    for r in rows:
        print("   " + "  ".join(r[i].ljust(widths[i]) for i in range(5)) + "  " + r[5])
    for key, value in (extra or {}).items():
        print(f"   {key}: {json.dumps(value) if not isinstance(value, str) else value}")
    if notes:
        print(f"   note: {notes}")
    record = {"benchmark": name, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "runs": args.runs,
              "warmup": args.warmup, "smoke": args.runs < 5, "cpu_count": os.cpu_count(),
              "loadavg": os.getloadavg(), "comparisons": [c.as_dict() for c in comparisons],
              "extra": extra or {}, "notes": notes}
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"{name}.json"
    history = json.loads(out.read_text()) if out.is_file() else []
    history.append(record)
    out.write_text(json.dumps(history, indent=1) + "\n")
    print(f"   appended to {out.relative_to(REPO)}")
    return record


# ------------------------------------------------------------------ measures shared by several benchmarks


def parse_args(description: str | None, cold_flag: bool = False) -> argparse.Namespace:
    """``--runs``/``--warmup`` (and ``--cold`` if asked) for scripts without options of their own."""
    p = parser(description)
    if cold_flag:
        p.add_argument("--cold", action="store_true",
                       help="evict the model files from the page cache before every measurement (default: warm)")
    return p.parse_args()


def ready_measure(cmd: Callable[[int], list[str]], cache: Sequence[Path] = (), cold: bool = False,
                  env: dict[str, str] | None = None, path: str = "/health",
                  ready: Callable[[httpx.Response], bool] = healthy) -> Callable[[], dict[str, Any]]:
    """A measure for ``interleave``: set the page cache for ``cache``, then spawn → ready seconds."""
    def measure() -> dict[str, Any]:
        set_cache(cache, cold)
        r = spawn_to_ready(cmd, env, path, ready)
        return {"value": r["seconds"], "load_seconds": r["load_seconds"]}
    return measure


def floor_measure(imports: Sequence[str], loads: Sequence[Sequence[str]], cache: Sequence[Path] = (),
                  cold: bool = False) -> Callable[[], dict[str, Any]]:
    """The floor: fresh-process import time + the slowest single load, each in its own fresh process.

    ``loads`` are argument lists for ``inproc.py`` (e.g. ``["load-gguf", PATH]``).
    """
    def measure() -> dict[str, Any]:
        set_cache(cache, cold)
        imp = import_time(imports)
        seconds = []
        for args in loads:
            set_cache(cache, cold)
            seconds.append(inproc_json(*args)["seconds"])
        return {"value": imp + max(seconds), "import": imp, "loads": seconds}
    return measure


def compare(results: dict[str, list[Any]], baseline: str, ours: str, target: float | None,
            metric: str = "spawn→ready", unit: str = "s", higher_is_better: bool = False) -> Comparison:
    """A Comparison of two ``interleave`` result lists (their keys are the labels)."""
    return Comparison(metric, unit, baseline, values_of(results[baseline]), ours, values_of(results[ours]), target,
                      higher_is_better)


def medians_of(results: list[dict[str, Any]], key: str) -> Any:
    """Median over rounds of a per-round number, or element-wise of a per-round list/dict of numbers."""
    first = results[0][key]
    if isinstance(first, dict):
        return {k: round(statistics.median(r[key][k] for r in results), 4) for k in first}
    if isinstance(first, list):
        return [round(statistics.median(r[key][i] for r in results), 4) for i in range(len(first))]
    return round(statistics.median(r[key] for r in results), 4)
