"""OpenMP's spin-wait and a shared machine: Gemma 3 270M decode speed per OpenMP wait setting, on a
quiet machine and with another busy process on one core.

    python bench/bench_omp_wait.py [--runs 5] [--tokens 32]
    python bench/bench_omp_wait.py --asr [--runs 5]     # Whisper tiny.en on 1 s of silence instead

llama.cpp (and CTranslate2) run their threads with GNU OpenMP, whose threads spin at every barrier
before they sleep. With a core taken by another process, a spinning thread holds the core its
partner needs, and a token can take seconds (issue 18: streams stalled for 30 s; Whisper took 25x
longer on a busy machine). Three servers, one per setting, stay up side by side (idle servers cost
nothing); each round sends the same 32-token greedy /generate to each, interleaved, quiet then with
a busy-loop process pinned to one core. Reports tokens/s medians and the ratio to the default.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from coldstart.processes import ServerProcess, free_port, module_command, server_env
from coldstart.server_kinds import by_key

# "default" is GNU OpenMP's own (a spin count of 300,000); the servers now start with 1000
# (serving_core/openmp.py), so the old default is set explicitly.
VARIANTS = {
    "default": {"GOMP_SPINCOUNT": "300000"},
    "GOMP_SPINCOUNT=10000": {"GOMP_SPINCOUNT": "10000"},
    "GOMP_SPINCOUNT=1000 (ours)": {"GOMP_SPINCOUNT": "1000"},
    "GOMP_SPINCOUNT=100": {"GOMP_SPINCOUNT": "100"},
    "OMP_WAIT_POLICY=PASSIVE": {"OMP_WAIT_POLICY": "PASSIVE"},
}


def tokens_per_second(url: str, tokens: int) -> float:
    r = httpx.post(f"{url}/generate", timeout=600, json={
        "model": "gemma-3-270m", "prompt": "Once upon a time", "max_tokens": tokens, "temperature": 0,
        "cache_prompt": False})
    r.raise_for_status()
    t = r.json()["timings"]
    return tokens / (t["prompt_seconds"] + t["generation_seconds"])


def asr_speed(url: str) -> float:
    """Transcriptions per second of the cold-start tool's probe (1 s of silence), tiny.en."""
    from coldstart.server_kinds import silent_wav

    t0 = time.perf_counter()
    httpx.post(f"{url}/asr", files={"audio": ("silence.wav", silent_wav())}, timeout=600).raise_for_status()
    return 1 / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--asr", action="store_true", help="the ASR/OCR server's /asr instead of /generate")
    args = parser.parse_args()
    logs = Path("bench/results")
    logs.mkdir(parents=True, exist_ok=True)
    servers = {}
    for name, env in VARIANTS.items():
        cfg = logs / f"omp-{abs(hash(name))}.yaml"
        cfg.write_text("models:\n  - name: gemma-3-270m\n    options: {parallel: 1}\n")
        module = by_key("asr_ocr" if args.asr else "gguf").module
        srv = ServerProcess(module_command(module, None if args.asr else cfg), logs / f"omp-{abs(hash(name))}.log",
                            port=free_port(), env={**server_env(None), **env})
        srv.wait_settled(timeout=120)
        servers[name] = srv
    results: dict[str, dict[str, list[float]]] = {c: {n: [] for n in VARIANTS} for c in ("quiet", "contended")}
    try:
        def measure(url: str) -> float:
            return asr_speed(url) if args.asr else tokens_per_second(url, args.tokens)

        for srv in servers.values():  # warm-up round, discarded
            measure(srv.url)
        for _ in range(args.runs):
            for condition in ("quiet", "contended"):
                hog = None
                if condition == "contended":
                    hog = subprocess.Popen(["taskset", "-c", "0", sys.executable, "-c", "while True: pass"])
                try:
                    for name, srv in servers.items():
                        results[condition][name].append(measure(srv.url))
                finally:
                    if hog is not None:
                        hog.kill()
                        hog.wait()
    finally:
        for srv in servers.values():
            srv.stop()
    what = "transcriptions/s of 1 s of silence, Whisper tiny.en" if args.asr else \
        f"tokens/s, {args.tokens}-token greedy /generate, Gemma 3 270M"
    print(f"{what}, median of {args.runs} (min-max), {os.cpu_count()} cores")
    for condition, by_variant in results.items():
        base = statistics.median(by_variant["default"])
        for name, values in by_variant.items():
            med = statistics.median(values)
            print(f"  {condition:9s} {name:24s} {med:7.1f} ({min(values):.1f}-{max(values):.1f})  "
                  f"ratio to default {med / base:.2f}")


if __name__ == "__main__":
    main()
