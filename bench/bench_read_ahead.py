"""Reading the weights ahead (issue 23): the GGUF server on its embedded models (three files, ~0.7 GB),
spawn → ready with the weight files evicted from the page cache (cold) and cached (warm), with
``read_ahead`` on (the default) and off, interleaved round by round. The floor, measured in the same
rounds: reading the files cold (sequentially, one process) + a fresh ``import fastapi, uvicorn,
llama_cpp, gguf_model_server.app`` — the two things a cold start must do, which read-ahead lets
overlap; reported ÷ their sum (goal ≤ 1.1) and ÷ their max.

    python bench/bench_read_ahead.py [--runs 5] [--config CONFIG]   # default: the embedded models
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import common

from coldstart.server_kinds import by_key
from serving_core.read_ahead import files_in

IMPORTS = ["fastapi", "uvicorn", "llama_cpp", "gguf_model_server.app"]


def read_cold(files: list[Path]) -> float:
    common.evict(files)
    t0 = time.perf_counter()
    for f in files:
        with f.open("rb") as fh:
            while fh.read(8 << 20):
                pass
    return time.perf_counter() - t0


def main() -> None:
    p = common.parser(__doc__)
    p.add_argument("--config", type=Path, help="a GGUF server config (default: the embedded models)")
    args = p.parse_args()
    weights = by_key("gguf").weights_by_model(args.config)
    files = list(files_in(p for paths in weights.values() for p in paths))
    size = sum(f.stat().st_size for f in files)
    cmd = common.gguf_cmd(args.config)

    def floor() -> dict[str, Any]:
        disk = read_cold(files)
        imports = common.import_time(IMPORTS)
        return {"value": disk + imports, "disk": disk, "imports": imports, "max": max(disk, imports)}

    def start(on: bool, cold: bool) -> Any:
        return common.ready_measure(cmd, files, cold, env={"GGUF_READ_AHEAD": "true" if on else "false"})

    res = common.interleave(args.runs, args.warmup, {
        "floor": floor,
        "cold, read-ahead off": start(False, True), "cold, read-ahead on": start(True, True),
        "warm, read-ahead off": start(False, False), "warm, read-ahead on": start(True, False),
    })
    maxes = [r["max"] for r in res["floor"]]
    comps = [
        common.compare(res, "floor", "cold, read-ahead on", 1.1, metric="cold spawn→ready ÷ (disk read + imports)"),
        common.Comparison("cold spawn→ready ÷ max(disk read, imports)", "s", "max(read, imports)", maxes,
                          "cold, read-ahead on", common.values_of(res["cold, read-ahead on"]), None),
        common.compare(res, "floor", "cold, read-ahead off", None, metric="without read-ahead ÷ floor"),
        common.compare(res, "cold, read-ahead off", "cold, read-ahead on", None, metric="cold: on ÷ off"),
        common.compare(res, "warm, read-ahead off", "warm, read-ahead on", 1.02, metric="warm: on ÷ off"),
    ]
    common.report("bench_read_ahead", args, comps, extra={
        "weight_files": len(files), "weight_mb": round(size / 1e6),
        "floor_disk_s": common.medians_of(res["floor"], "disk"),
        "floor_imports_s": common.medians_of(res["floor"], "imports")})


if __name__ == "__main__":
    main()
