"""Sleep and wake ÷ a load, on the GGUF server (issue 23): the embedded Gemma 3 270M (`parallel: 4`,
`n_ctx: 2048`, the default KV cache and RAM prompt cache), interleaved round by round:

- load: ``POST /models/gemma/unload`` then the time of ``POST /models/gemma/load`` (warm page cache:
  the file was just read); cold load: the same after evicting the file from the page cache;
- wake from level 1 (context, KV cache and engine freed, weights kept mapped): ``sleep?level=1``,
  then the time of ``POST /models/gemma/wake`` (target ≤ 0.05 of a load);
- wake from level 2 (the weights unmapped too): the same with ``level=2`` (target ≤ 0.5).

Also the server's RSS asleep ÷ awake at each level (after a short settle). vLLM's sleep mode is the
anchor (18-200x faster than a reload, on GPUs).

    python bench/bench_sleep_wake.py [--runs 7]
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

import common

MODEL = "gemma"


def main() -> None:
    args = common.parser(__doc__).parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-sleep-") as tmp:
        config = Path(tmp) / "sleep.yaml"
        config.write_text(json.dumps({"models": [{"name": MODEL, "backend": "llama_cpp", "path": str(common.GEMMA),
                                                  "options": {"parallel": 4, "n_ctx": 2048}}]}))
        with common.running(common.gguf_cmd(config)) as srv:
            srv.wait_ready()
            client = srv.client
            rss: dict[str, list[float]] = {"awake": [], "level 1": [], "level 2": []}

            def post(path: str) -> float:
                t0 = time.perf_counter()
                r = client.post(path)
                took = time.perf_counter() - t0
                r.raise_for_status()
                assert r.json()["state"] in ("ready", "sleeping", "unloaded"), r.text
                return took

            def resident() -> float:
                time.sleep(0.3)
                return common.read_proc_status(srv.pid)["VmRSS"] / 1024

            def load(cold: bool = False) -> dict[str, Any]:
                post(f"/models/{MODEL}/unload")
                if cold:
                    common.evict([common.GEMMA])
                took = post(f"/models/{MODEL}/load")
                common.generate(client, MODEL, max_tokens=2)  # touched, as a served model is
                rss["awake"].append(resident())
                return {"value": took}

            def wake(level: int) -> dict[str, Any]:
                post(f"/models/{MODEL}/sleep?level={level}")
                rss[f"level {level}"].append(resident())
                took = post(f"/models/{MODEL}/wake")
                common.generate(client, MODEL, max_tokens=2)
                return {"value": took}

            res = common.interleave(args.runs, args.warmup, {"load": load, "cold load": lambda: load(cold=True),
                                                             "wake 1": lambda: wake(1), "wake 2": lambda: wake(2)})
    comps = [common.Comparison("wake from level 1 ÷ load", "s", "load", common.values_of(res["load"]),
                               "wake 1", common.values_of(res["wake 1"]), 0.05),
             common.Comparison("wake from level 2 ÷ load", "s", "load", common.values_of(res["load"]),
                               "wake 2", common.values_of(res["wake 2"]), 0.5),
             common.Comparison("wake from level 1 ÷ cold load", "s", "cold load", common.values_of(res["cold load"]),
                               "wake 1", common.values_of(res["wake 1"]), 0.05),
             common.Comparison("wake from level 2 ÷ cold load", "s", "cold load", common.values_of(res["cold load"]),
                               "wake 2", common.values_of(res["wake 2"]), 0.5)]
    awake = sorted(rss["awake"])[len(rss["awake"]) // 2]
    extra = {f"rss_mib_{k.replace(' ', '_')}": common.spread(v) for k, v in rss.items()}
    extra.update({f"rss_{k.replace(' ', '_')}_over_awake": round(sorted(v)[len(v) // 2] / awake, 3)
                  for k, v in rss.items() if k != "awake"})
    common.report("bench_sleep_wake", args, comps, extra=extra)


if __name__ == "__main__":
    main()
