"""Peak RSS (VmHWM from /proc/PID/status, after /health 200 and one /generate to each name) of the
GGUF server serving the same Gemma file under 3 names, divided by the same server with it under
1 name. One fresh start per measurement, alternating. Target ≤ 1.4. Pss (smaps_rollup, which
splits pages shared between mappings) is reported alongside for context.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import common

ONE = "1 name"
THREE = "3 names"


def peak_mb(config: Path, names: list[str]) -> dict[str, Any]:
    with common.running(common.gguf_cmd(config)) as srv:
        srv.wait_ready()
        for name in names:
            r = common.generate(srv.client, name, max_tokens=8)
            if r["status"] != 200:
                raise RuntimeError(f"/generate to {name} failed: {r}")
        mem = common.read_proc_status(srv.pid)
    return {"value": mem["VmHWM"] / 1024, "rss_mb": mem["VmRSS"] / 1024, "pss_mb": mem.get("Pss", 0) / 1024}


def main() -> None:
    args = common.parse_args(__doc__)
    names = ["gemma-a", "gemma-b", "gemma-c"]
    with common.gguf_configs({names[0]: common.GEMMA}, dict.fromkeys(names, common.GEMMA)) as (one, three):
        res = common.interleave(args.runs, args.warmup, {ONE: lambda: peak_mb(one, names[:1]),
                                                         THREE: lambda: peak_mb(three, names)})
    common.report("bench_rss", args,
                  [common.compare(res, ONE, THREE, 1.4, "peak RSS (VmHWM)", "MB")],
                  extra={"pss_mb_median (1 name, 3 names)": [common.medians_of(res[k], "pss_mb") for k in (ONE, THREE)],
                         "model_file_mb": round(common.GEMMA.stat().st_size / 2**20, 1)})


if __name__ == "__main__":
    main()
