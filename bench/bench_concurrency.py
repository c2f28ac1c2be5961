"""GGUF server serving the Gemma file under 3 names: 16 concurrent client threads send a fixed set of
requests (default 48, max_tokens 32, temperature 0) spread round-robin over the 3 models; aggregate
completion tokens/s (sum of tokens ÷ wall time of the whole batch) divided by a single client
sending requests one after another (default 12) to the same warm server. Also reports non-200
responses and p50/p99 latency. Targets: ratio ≥ 0.8 and 0 errors.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import common

PROMPTS = ["The capital of France is", "Once upon a time", "The best way to learn", "In the year 2000"]
NAMES = ["gemma-a", "gemma-b", "gemma-c"]
SEQ = "1 client, sequential"
CONC = "16 clients, concurrent"


def batch(srv: Any, n_requests: int, threads: int, max_tokens: int) -> dict[str, Any]:
    jobs = [(NAMES[i % len(NAMES)], PROMPTS[i % len(PROMPTS)]) for i in range(n_requests)]
    t0 = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        results = list(pool.map(lambda job: common.generate(srv.client, job[0], job[1], max_tokens), jobs))
    wall = time.perf_counter() - t0
    ok = [r for r in results if r["status"] == 200]
    latencies = [r["seconds"] for r in ok]
    return {"value": sum(r["completion_tokens"] for r in ok) / wall, "wall": wall, "errors": len(results) - len(ok),
            "statuses": sorted({str(r["status"]) for r in results}),
            "p50": common.percentile(latencies, 50), "p99": common.percentile(latencies, 99)}


def main() -> None:
    p = common.parser(__doc__)
    p.add_argument("--requests", type=int, default=48, help="concurrent batch size (default 48)")
    p.add_argument("--seq-requests", type=int, default=12, help="sequential batch size (default 12)")
    p.add_argument("--threads", type=int, default=16)
    p.add_argument("--max-tokens", type=int, default=32)
    args = p.parse_args()
    with common.gguf_configs(dict.fromkeys(NAMES, common.GEMMA)) as (config,), \
            common.running(common.gguf_cmd(config)) as srv:
        srv.wait_ready()
        srv.client.timeout = 600.0
        for name in NAMES:  # first decode of each model, outside every measurement
            common.generate(srv.client, name, PROMPTS[0], args.max_tokens)
        res = common.interleave(args.runs, args.warmup, {
            SEQ: lambda: batch(srv, args.seq_requests, 1, args.max_tokens),
            CONC: lambda: batch(srv, args.requests, args.threads, args.max_tokens),
        })
    errors = sum(r["errors"] for rs in res.values() for r in rs)
    common.report("bench_concurrency", args,
                  [common.compare(res, SEQ, CONC, 0.8, "aggregate throughput", "tok/s", higher_is_better=True)],
                  extra={"errors (non-200, all rounds; target 0)": errors,
                         "statuses": sorted({s for rs in res.values() for r in rs for s in r["statuses"]}),
                         "latency_s p50/p99 sequential (per round)": [[round(r["p50"], 3), round(r["p99"], 3)]
                                                                     for r in res[SEQ]],
                         "latency_s p50/p99 concurrent (per round)": [[round(r["p50"], 3), round(r["p99"], 3)]
                                                                     for r in res[CONC]],
                         "requests (sequential, concurrent)": [args.seq_requests, args.requests],
                         "max_tokens": args.max_tokens})


if __name__ == "__main__":
    main()
