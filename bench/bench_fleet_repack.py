"""The GGUF server on the `fleet` pack with llama.cpp's weight repacking on (the default) and off
(`options: {repack: false}`: no extra buffer types, the mapped weights used as they are), warm page
cache, interleaved. Per start: spawn → /health healthy, peak RSS, and single-stream decode speed
of each model (64 tokens, greedy, after a 1-token first request). Reported as ratios against the
default: what the repacking copy costs the start, and what it buys in decode speed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import common

VARIANTS = {"repack (default)": {}, "no repack": {"repack": False}}
PROMPT = "Write a short story about a lighthouse keeper."


def start(config: Path, files: list[Path]) -> dict[str, Any]:
    common.warm(files)
    with common.running(common.gguf_cmd(config)) as srv:
        ready = srv.wait_ready()
        peak = common.read_proc_status(srv.pid)["VmHWM"] / 1024
        common.first_tokens(srv)
        speed = {}
        for model in common.FLEET_MODELS:
            r = srv.client.post("/v1/completions", json={"model": model, "prompt": PROMPT, "max_tokens": 64,
                                                         "temperature": 0})
            if r.status_code != 200:
                raise RuntimeError(f"{model}: {r.status_code} {r.text[:300]}")
            speed[model] = r.json()["timings"]["tokens_per_second"]
    return {"value": ready, "ready": ready, "VmHWM": peak, "tokens_per_second": speed}


def main() -> None:
    args = common.parse_args(__doc__)
    res = common.interleave_fleet_variants(args, VARIANTS, start)
    base, other = VARIANTS
    comparisons = common.ready_and_peak_rss(res, base, other)
    for model in common.FLEET_MODELS:
        comparisons.append(common.Comparison(f"decode tok/s: {model}", "tok/s", base,
                                             [r["tokens_per_second"][model] for r in res[base]], other,
                                             [r["tokens_per_second"][model] for r in res[other]], None,
                                             higher_is_better=True))
    common.report("bench_fleet_repack", args, comparisons)


if __name__ == "__main__":
    main()
