"""Before/after of the cold-start optimizations that are settings, in one interleaved run.

    python bench/bench_settings_ab.py [--runs 5]

For each setting, the GGUF server starts with the setting off (baseline) and on (ours), A B A B:
  early_start      spawn → ready with 3 distinct Gemma copies, and with the embedded Gemma alone.
                   Loading starts before FastAPI/uvicorn are imported (on) or from the lifespan,
                   after them (off).
  share_identical_models  the same Gemma file under 3 names: spawn → ready and peak RSS (VmHWM
                   after one /generate per name), each name its own copy (off) or one shared (on).
  warmup           embedded Gemma; spawn → ready and spawn → first streamed token. Warmup on makes
                   "ready" wait for a 1-token inference (the original servers' test inference); off is ours.
No targets: these are the measured effects reported in COLD-START-OPTIMIZATIONS.md.
"""

from __future__ import annotations

from typing import Any

import common
from bench_ttft import first_token_seconds


def start(env: dict[str, str], config: Any = None) -> dict[str, Any]:
    with common.running(common.gguf_cmd(config), env) as srv:
        ready = srv.wait_ready()
        first, _ = first_token_seconds(srv)
    return {"value": ready, "ready": ready, "first_token": first}


def start_rss(env: dict[str, str], config: Any) -> dict[str, Any]:
    with common.running(common.gguf_cmd(config), env) as srv:
        ready = srv.wait_ready()
        for name in ("gemma-a", "gemma-b", "gemma-c"):
            common.generate(srv.client, name, max_tokens=8)
        rss_mb = common.read_proc_status(srv.pid)["VmHWM"] / 1024
    return {"value": ready, "ready": ready, "rss_mb": rss_mb}


def main() -> None:
    args = common.parse_args(__doc__)
    comparisons = []
    with common.copies_config(3) as (_, config):
        res = common.interleave(args.runs, args.warmup, {
            "early_start off": lambda: start({"GGUF_EARLY_START": "false"}, config),
            "early_start on": lambda: start({"GGUF_EARLY_START": "true"}, config),
        })
    comparisons.append(common.Comparison(
        "ready (3 models)", "s", "early_start off", common.values_of(res["early_start off"], "ready"),
        "early_start on", common.values_of(res["early_start on"], "ready"), None))
    res = common.interleave(args.runs, args.warmup, {
        "early_start off": lambda: start({"GGUF_EARLY_START": "false"}),
        "early_start on": lambda: start({"GGUF_EARLY_START": "true"}),
    })
    comparisons.append(common.Comparison(
        "ready (1 model)", "s", "early_start off", common.values_of(res["early_start off"], "ready"),
        "early_start on", common.values_of(res["early_start on"], "ready"), None))
    with common.gguf_configs({"gemma-a": common.GEMMA, "gemma-b": common.GEMMA, "gemma-c": common.GEMMA}) as (cfg,):
        res = common.interleave(args.runs, args.warmup, {
            "sharing off": lambda: start_rss({"GGUF_SHARE_IDENTICAL_MODELS": "false"}, cfg),
            "sharing on": lambda: start_rss({"GGUF_SHARE_IDENTICAL_MODELS": "true"}, cfg),
        })
    for key, unit in (("ready", "s"), ("rss_mb", "MB")):
        comparisons.append(common.Comparison(
            f"same file x3: {key}", unit, "sharing off", common.values_of(res["sharing off"], key),
            "sharing on", common.values_of(res["sharing on"], key), None))
    res = common.interleave(args.runs, args.warmup, {
        "warmup on (seed)": lambda: start({"GGUF_WARMUP": "true"}),
        "warmup off (ours)": lambda: start({"GGUF_WARMUP": "false"}),
    })
    for key in ("ready", "first_token"):
        comparisons.append(common.Comparison(
            f"spawn → {key}", "s", "warmup on", common.values_of(res["warmup on (seed)"], key),
            "warmup off", common.values_of(res["warmup off (ours)"], key), None))
    common.report("bench_settings_ab", args, comparisons)


if __name__ == "__main__":
    main()
