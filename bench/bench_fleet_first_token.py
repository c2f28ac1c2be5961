"""The `fleet` pack on the GGUF server (Qwen2.5-Coder 1.5B + 0.5B + Gemma 270M, 1.86 GB; install it
with `python -m model_store install fleet`): does "ready" hide disk reads that the first request
then pays? Each round starts the server twice, interleaved: once after evicting the model files
from the page cache (cold; per file, POSIX_FADV_DONTNEED, not the whole cache) and once with them
read in (warm). After /health says healthy, one 1-token completion per model, in turn.

Reported per model: first token after ready, cold ÷ warm (target ≤ 1.3), and spawn → ready, cold
÷ warm (what the disk costs the start), with the weights' page-cache share /health reports at
ready.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import common

CONFIG = common.FLEET_CONFIG
MODELS = common.FLEET_MODELS


def one_start(files: list[Path], cold: bool) -> dict[str, Any]:
    common.set_cache(files, cold)
    with common.running(common.gguf_cmd(CONFIG)) as srv:
        ready = srv.wait_ready()
        resident = {n: m.get("weights_resident") for n, m in srv.last_body["models"].items()}
        first = {m: latency for m, (latency, _) in common.first_tokens(srv).items()}
    return {"value": ready, "ready": ready, "first": first, "resident": resident}


def main() -> None:
    args = common.parse_args(__doc__)
    files = common.fleet_files()
    res = common.interleave(args.runs, args.warmup, {
        "warm": lambda: one_start(files, cold=False),
        "cold": lambda: one_start(files, cold=True),
    })
    comparisons = [common.Comparison("spawn→ready", "s", "warm cache", [r["ready"] for r in res["warm"]],
                                     "cold cache", [r["ready"] for r in res["cold"]], None)]
    for model in MODELS:
        comparisons.append(common.Comparison(f"first token after ready: {model}", "s", "warm cache",
                                             [r["first"][model] for r in res["warm"]], "cold cache",
                                             [r["first"][model] for r in res["cold"]], 1.3))
    common.report("bench_fleet_first_token", args, comparisons, extra={
        "weight_bytes": sum(f.stat().st_size for f in files),
        "weights_resident_at_ready_cold": res["cold"][0]["resident"],
        "weights_resident_at_ready_warm": res["warm"][0]["resident"],
    })


if __name__ == "__main__":
    main()
