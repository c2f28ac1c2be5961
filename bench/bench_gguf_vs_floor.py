"""GGUF server, 3 models (three distinct copies of the Gemma file): spawn → /health 200 (healthy),
divided by the floor = fresh-process `import fastapi, uvicorn, llama_cpp, gguf_model_server.app`
+ the slowest single in-process load of one copy (each in its own fresh process). Target ≤ 1.25.
"""

from __future__ import annotations

import common

FLOOR = "floor: import + slowest single load"
OURS = "server: 3 models"
IMPORTS = ["fastapi", "uvicorn", "llama_cpp", "gguf_model_server.app"]


def main() -> None:
    args = common.parse_args(__doc__, cold_flag=True)
    with common.copies_config(3) as (paths, config):
        res = common.interleave(args.runs, args.warmup, {
            FLOOR: common.floor_measure(IMPORTS, [["load-gguf", str(x)] for x in paths], paths, args.cold),
            OURS: common.ready_measure(common.gguf_cmd(config), paths, args.cold),
        })
    common.report("bench_gguf_vs_floor", args,
                  [common.compare(res, FLOOR, OURS, 1.25)],
                  extra={"page_cache": "cold" if args.cold else "warm",
                         "floor_import_s_median": common.medians_of(res[FLOOR], "import"),
                         "floor_single_loads_s_median": common.medians_of(res[FLOOR], "loads"),
                         "server_reported_load_s_median": common.medians_of(res[OURS], "load_seconds")})


if __name__ == "__main__":
    main()
