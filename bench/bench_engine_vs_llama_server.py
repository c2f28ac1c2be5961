"""The serving engine against llama.cpp's own C++ `llama-server` (built from the llama.cpp sources
vendored in the pinned llama-cpp-python sdist by scripts/build-llama-server.sh, same CPU flags), same
model (embedded Gemma 3 270M), same threads, same number of parallel sequences, same per-sequence
context, both warm, /v1/completions, temperature 0, interleaved round by round:

- single stream: one client, requests one after another (max_tokens 64) → tokens/s; target ≥ 0.97
- 16 concurrent clients × 2 requests × 32 tokens → aggregate tokens/s (target ≥ 1.0) and p50/p99
  request latency (target ≤ 1.0)
- ours: 16-client aggregate ÷ our single stream (target ≥ 2)
- spawn → ready with one model, fresh processes (target ≤ 1.0)

Tokens are counted from each response's ``usage.completion_tokens``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import common
import httpx

PROMPTS = ["The capital of France is", "Once upon a time", "The best way to learn", "In the year 2000",
           "My favourite food is", "Water boils at", "The quick brown fox", "def fibonacci(n):"]
PEER, OURS = "llama-server", "ours"


def llama_server_binary() -> str:
    out = subprocess.run(["bash", str(common.REPO / "scripts/build-llama-server.sh")], check=True,
                         capture_output=True, text=True)
    return out.stdout.strip().splitlines()[-1]


def peer_cmd(binary: str, threads: int, parallel: int, n_ctx: int,
             n_gpu_layers: int = 0) -> Callable[[int], list[str]]:
    def build(port: int) -> list[str]:
        return [binary, "-m", str(common.GEMMA), "--host", "127.0.0.1", "--port", str(port), "-t", str(threads),
                "-tb", str(threads), "-np", str(parallel), "-c", str(n_ctx * parallel), "-ngl", str(n_gpu_layers)]
    return build


def our_config(directory: Path, threads: int, parallel: int, n_ctx: int, n_gpu_layers: int = 0) -> Path:
    path = directory / "engine.yaml"
    path.write_text(json.dumps({"models": [{"name": "gemma-3-270m", "backend": "llama_cpp", "path": str(common.GEMMA),
                                            "options": {"n_ctx": n_ctx, "parallel": parallel, "n_threads": threads,
                                                        "n_gpu_layers": n_gpu_layers}}]}))
    return path


def complete(client: httpx.Client, prompt: str, max_tokens: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    r = client.post("/v1/completions", json={"model": "gemma-3-270m", "prompt": prompt, "max_tokens": max_tokens,
                                             "temperature": 0.0})
    seconds = time.perf_counter() - t0
    tokens = r.json()["usage"]["completion_tokens"] if r.status_code == 200 else 0
    return {"status": r.status_code, "seconds": seconds, "tokens": tokens}


def engine_seconds(srv: common.Server) -> dict[str, float] | None:
    """Our engine's step, decode and compute-wait seconds so far (from /metrics); None for the peer."""
    r = srv.client.get("/metrics")
    if r.status_code != 200 or "gguf_engine_step_seconds_total" not in r.text:
        return None
    out: dict[str, float] = {}
    for line in r.text.splitlines():
        for key in ("step", "decode", "compute_wait"):
            if line.startswith(f"gguf_engine_{key}_seconds_total{{"):
                out[key] = out.get(key, 0.0) + float(line.split()[-1])
    return out


def with_python_share(srv: common.Server, measure: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """``measure()``, plus (ours) the share of its wall time the engine thread spent outside
    llama_decode and compute waits: the Python around llama.cpp."""
    before = engine_seconds(srv)
    t0 = time.perf_counter()
    result = measure()
    wall = time.perf_counter() - t0
    after = engine_seconds(srv)
    if before is not None and after is not None:
        python = (after["step"] - before["step"]) - sum(after[k] - before[k] for k in ("decode", "compute_wait"))
        result["python_share"] = python / wall
    return result


def single_stream(srv: common.Server, requests: int, max_tokens: int) -> dict[str, Any]:
    def run() -> dict[str, Any]:
        t0 = time.perf_counter()
        results = [complete(srv.client, PROMPTS[i % len(PROMPTS)], max_tokens) for i in range(requests)]
        wall = time.perf_counter() - t0
        return {"value": sum(r["tokens"] for r in results) / wall,
                "errors": sum(r["status"] != 200 for r in results)}

    return with_python_share(srv, run)


def concurrent(srv: common.Server, clients: int, per_client: int, max_tokens: int) -> dict[str, Any]:
    return with_python_share(srv, lambda: _concurrent(srv, clients, per_client, max_tokens))


def _concurrent(srv: common.Server, clients: int, per_client: int, max_tokens: int) -> dict[str, Any]:
    jobs = [PROMPTS[i % len(PROMPTS)] for i in range(clients * per_client)]

    def client_run(k: int) -> list[dict[str, Any]]:
        with httpx.Client(base_url=srv.client.base_url, timeout=600) as c:
            return [complete(c, jobs[k * per_client + j], max_tokens) for j in range(per_client)]

    t0 = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        results = [r for rs in pool.map(client_run, range(clients)) for r in rs]
    wall = time.perf_counter() - t0
    ok = [r["seconds"] for r in results if r["status"] == 200]
    return {"value": sum(r["tokens"] for r in results) / wall, "errors": len(results) - len(ok),
            "p50": common.percentile(ok, 50), "p99": common.percentile(ok, 99)}


def serving_rounds(args: argparse.Namespace, peer: Callable[[int], list[str]],
                   ours: Callable[[int], list[str]]) -> dict[str, list[Any]]:
    """Both servers up and warm; single stream and concurrent clients, interleaved."""
    with common.running(peer) as peer_srv, common.running(ours) as our_srv:
        peer_srv.wait_ready(path="/health", ready=common.status_200)
        our_srv.wait_ready()
        for srv in (peer_srv, our_srv):
            srv.client.timeout = 600.0
            complete(srv.client, "Hello", 4)  # first decode, outside every measurement
        return common.interleave(args.runs, args.warmup, {
            f"{PEER} single": lambda: single_stream(peer_srv, 4, 64),
            f"{OURS} single": lambda: single_stream(our_srv, 4, 64),
            f"{PEER} {args.clients} clients": lambda: concurrent(peer_srv, args.clients, 2, 32),
            f"{OURS} {args.clients} clients": lambda: concurrent(our_srv, args.clients, 2, 32),
        })


def serving_comparisons(args: argparse.Namespace, res: dict[str, list[Any]]) -> list[common.Comparison]:
    conc = f"{args.clients} clients"
    return [
        common.compare(res, f"{PEER} single", f"{OURS} single", 0.97, "single stream", "tok/s",
                       higher_is_better=True),
        common.compare(res, f"{PEER} {conc}", f"{OURS} {conc}", 1.0, f"{conc} aggregate", "tok/s",
                       higher_is_better=True),
        common.Comparison(f"{conc} p50 latency", "s", PEER, common.values_of(res[f"{PEER} {conc}"], "p50"), OURS,
                          common.values_of(res[f"{OURS} {conc}"], "p50"), 1.0),
        common.Comparison(f"{conc} p99 latency", "s", PEER, common.values_of(res[f"{PEER} {conc}"], "p99"), OURS,
                          common.values_of(res[f"{OURS} {conc}"], "p99"), 1.0),
        common.compare(res, f"{OURS} single", f"{OURS} {conc}", 2.0, f"ours: {conc} ÷ single stream", "tok/s",
                       higher_is_better=True),
    ]


def main() -> None:
    p = common.parser(__doc__)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--parallel", type=int, default=4)
    p.add_argument("--n-ctx", type=int, default=2048, help="per sequence")
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--n-gpu-layers", type=int, default=0,
                   help="layers offloaded to the GPU on both sides (-1 all; a GPU build: scripts/gpu_check.sh)")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--skip-ready", action="store_true", help="skip the spawn → ready comparison")
    which.add_argument("--ready-only", action="store_true", help="only the spawn → ready comparison")
    args = p.parse_args()
    binary = llama_server_binary()
    peer = peer_cmd(binary, args.threads, args.parallel, args.n_ctx, args.n_gpu_layers)
    comparisons: list[common.Comparison] = []
    errors = 0
    with tempfile.TemporaryDirectory(prefix="bench-engine-") as tmp:
        ours = common.gguf_cmd(our_config(Path(tmp), args.threads, args.parallel, args.n_ctx, args.n_gpu_layers))
        python_share: dict[str, float] = {}
        if not args.ready_only:
            res = serving_rounds(args, peer, ours)
            comparisons += serving_comparisons(args, res)
            errors = sum(r["errors"] for rs in res.values() for r in rs)
            python_share = {name: round(statistics.median(r["python_share"] for r in rs), 4)
                            for name, rs in res.items() if rs and "python_share" in rs[0]}
        if not args.skip_ready:
            ready = common.interleave(args.runs, args.warmup, {
                f"{PEER} spawn→ready": common.ready_measure(peer, path="/health", ready=common.status_200),
                f"{OURS} spawn→ready": common.ready_measure(ours),
            })
            comparisons.append(common.compare(ready, f"{PEER} spawn→ready", f"{OURS} spawn→ready", 1.0))
    common.report("bench_engine_vs_llama_server", args, comparisons,
                  extra={"errors (non-200, all rounds)": errors, "llama-server": binary,
                         "ours: engine time outside llama_decode ÷ wall (median)": python_share,
                         "threads": args.threads, "parallel": args.parallel, "n_ctx_per_sequence": args.n_ctx,
                         "n_gpu_layers": args.n_gpu_layers})


if __name__ == "__main__":
    main()
