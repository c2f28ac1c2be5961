"""The GGUF server on the `fleet` pack (1.86 GB of GGUF) with llama.cpp's memory options, warm page
cache, interleaved: `use_mmap: true` (the default), `use_mmap: false`, and `use_mmap: true` +
`use_mlock: true`. Per start: spawn → /health healthy, then peak RSS (VmHWM), and at ready the
anonymous and file-backed resident memory (RssAnon, RssFile) and PSS. Reported as ratios against
the default, so the README can say which to pick and why.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import common

VARIANTS = {"mmap (default)": {}, "no mmap": {"use_mmap": False}, "mmap + mlock": {"use_mlock": True}}


def start(config: Path, files: list[Path]) -> dict[str, Any]:
    common.warm(files)
    with common.running(common.gguf_cmd(config)) as srv:
        ready = srv.wait_ready()
        mem = common.read_proc_status(srv.pid)
        return {"value": ready, "ready": ready, **{k: v / 1024 for k, v in mem.items()}}  # MB


def main() -> None:
    args = common.parse_args(__doc__)
    res = common.interleave_fleet_variants(args, VARIANTS, start)
    base = "mmap (default)"
    comparisons = []
    for name in VARIANTS:
        if name == base:
            continue
        comparisons += common.ready_and_peak_rss(res, base, name)
    common.report("bench_fleet_mmap", args, comparisons, extra={
        name: {k: common.medians_of(res[name], k) for k in ("ready", "VmHWM", "RssAnon", "RssFile", "Pss")}
        for name in VARIANTS})


if __name__ == "__main__":
    main()
