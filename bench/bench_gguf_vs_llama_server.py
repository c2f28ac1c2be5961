"""GGUF server, 3 models (three distinct copies of the Gemma file): spawn → /health 200 (healthy),
divided by llama-cpp-python's own server with ONE model (`python -m llama_cpp.server --model FILE`):
spawn → GET /v1/models 200. Target ≤ 1.1. Needs `pip install starlette-context` (llama_cpp.server dep).

Also measured in the same interleaved rounds: our server with the same ONE model, so that the
like-for-like ratio (1 model ÷ 1 model) is reported beside the 3-models ÷ 1-model target.
"""

from __future__ import annotations

import common

PEER = "llama_cpp.server: 1 model"
OURS = "server: 3 models"
OURS_ONE = "server: 1 model"


def main() -> None:
    args = common.parse_args(__doc__, cold_flag=True)
    with common.copies_config(3) as (paths, config), common.gguf_configs(common.named(paths[:1])) as (one,):
        res = common.interleave(args.runs, args.warmup, {
            PEER: common.ready_measure(common.llama_server_cmd(paths[0]), paths[:1], args.cold, path="/v1/models",
                                       ready=common.status_200),
            OURS: common.ready_measure(common.gguf_cmd(config), paths, args.cold),
            OURS_ONE: common.ready_measure(common.gguf_cmd(one), paths[:1], args.cold),
        })
    common.report("bench_gguf_vs_llama_server", args,
                  [common.compare(res, PEER, OURS, 1.1), common.compare(res, PEER, OURS_ONE, None)],
                  extra={"page_cache": "cold" if args.cold else "warm",
                         "server_reported_load_s_median": common.medians_of(res[OURS], "load_seconds")})


if __name__ == "__main__":
    main()
