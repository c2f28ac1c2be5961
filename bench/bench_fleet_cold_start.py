"""The GGUF server on the `fleet` pack (Qwen2.5-Coder 1.5B + 0.5B + Gemma 270M, 1.86 GB; install
with `python -m model_store install fleet`), page cache of the three files evicted before every
measurement (per file, POSIX_FADV_DONTNEED). Three measures per round, interleaved:

- floor: this disk's sequential read of the three files (evicted, read one after another; its
  bandwidth is measured here, in the same run) + a fresh `import fastapi, uvicorn, llama_cpp,
  gguf_model_server.app` — what no server can avoid: the imports and reading the weights once;
- ours, parallel loading (the default): spawn → /health healthy, then spawn → each model's first
  token (a 1-token completion per model, in turn);
- ours, sequential loading (GGUF_LOADER_WORKERS=1): spawn → healthy.

Reported: parallel spawn → ready ÷ floor, spawn → last model's first token ÷ floor, and parallel ÷
sequential (the seed's central claim at a size where disk reads matter).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import common

CONFIG = common.FLEET_CONFIG
MODELS = common.FLEET_MODELS
IMPORTS = ["fastapi", "uvicorn", "llama_cpp", "gguf_model_server.app"]


def floor(files: list[Path]) -> dict[str, Any]:
    common.evict(files)
    t0 = time.perf_counter()
    for f in files:
        with open(f, "rb", buffering=0) as fh:
            while fh.read(16 << 20):
                pass
    read = time.perf_counter() - t0
    imports = common.import_time(IMPORTS)
    size = sum(f.stat().st_size for f in files)
    return {"value": read + imports, "read_s": read, "import_s": imports, "read_mb_s": size / 1e6 / read}


def start(files: list[Path], env: dict[str, str] | None = None, first_tokens: bool = True) -> dict[str, Any]:
    common.evict(files)
    with common.running(common.gguf_cmd(CONFIG), env) as srv:
        ready = srv.wait_ready()
        out: dict[str, Any] = {"value": ready, "ready": ready, "load_seconds": srv.load_seconds()}
        if first_tokens:
            out["first_token"] = {m: since_spawn for m, (_, since_spawn) in common.first_tokens(srv).items()}
    return out


def main() -> None:
    args = common.parse_args(__doc__)
    files = common.fleet_files()
    res = common.interleave(args.runs, args.warmup, {
        "floor": lambda: floor(files),
        "parallel": lambda: start(files),
        "sequential": lambda: start(files, {"GGUF_LOADER_WORKERS": "1"}, first_tokens=False),
    })
    floors = [r["value"] for r in res["floor"]]
    last_token = [max(r["first_token"].values()) for r in res["parallel"]]
    comparisons = [
        common.Comparison("cold spawn→ready", "s", "floor: read 1.86 GB + imports", floors,
                          "ours (parallel loading)", [r["ready"] for r in res["parallel"]], None),
        common.Comparison("cold spawn→every model's first token", "s", "floor: read 1.86 GB + imports", floors,
                          "ours (parallel loading)", last_token, None),
        common.compare(res, "sequential", "parallel", None, "cold spawn→ready, parallel ÷ sequential"),
    ]
    common.report("bench_fleet_cold_start", args, comparisons, extra={
        "weight_bytes": sum(f.stat().st_size for f in files),
        "disk_read_mb_s_median": common.medians_of(res["floor"], "read_mb_s"),
        "floor_read_s_median": common.medians_of(res["floor"], "read_s"),
        "floor_import_s_median": common.medians_of(res["floor"], "import_s"),
        "first_token_s_from_spawn_median": {m: round(sorted(r["first_token"][m] for r in res["parallel"])[
            len(res["parallel"]) // 2], 3) for m in MODELS},
        "parallel_reported_load_s_median": common.medians_of(res["parallel"], "load_seconds"),
        "sequential_reported_load_s_median": common.medians_of(res["sequential"], "load_seconds"),
    })


if __name__ == "__main__":
    main()
