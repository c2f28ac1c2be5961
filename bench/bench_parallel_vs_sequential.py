"""GGUF server, 3 models (three distinct copies of the Gemma file), page cache of the copies evicted
before every start: spawn → /health 200 with parallel loading (default: one worker per model)
divided by sequential loading (GGUF_LOADER_WORKERS=1). No target: reported as measured.
"""

from __future__ import annotations

import common

SEQ = "sequential (GGUF_LOADER_WORKERS=1)"
PAR = "parallel (default)"


def main() -> None:
    args = common.parse_args(__doc__)
    with common.copies_config(3) as (paths, config):
        cmd = common.gguf_cmd(config)
        res = common.interleave(args.runs, args.warmup, {
            SEQ: common.ready_measure(cmd, paths, cold=True, env={"GGUF_LOADER_WORKERS": "1"}),
            PAR: common.ready_measure(cmd, paths, cold=True),
        })
    common.report("bench_parallel_vs_sequential", args, [common.compare(res, SEQ, PAR, None, "cold spawn→ready")],
                  extra={"page_cache": "cold (posix_fadvise DONTNEED on the 3 copies before each start)",
                         "sequential_reported_load_s_median": common.medians_of(res[SEQ], "load_seconds"),
                         "parallel_reported_load_s_median": common.medians_of(res[PAR], "load_seconds")})


if __name__ == "__main__":
    main()
