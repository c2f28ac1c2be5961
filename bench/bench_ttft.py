"""GGUF server on its defaults (embedded Gemma 3 270M): spawn → first streamed token of
POST /generate (stream: true, sent the moment /health answers 200), divided by spawn → /health 200
measured in the SAME start (so each pair is exactly matched; one start per round). The difference
is the first request's cost after ready (first decode, prompt processing). Target ≤ 1.3.
"""

from __future__ import annotations

import json
import time
from typing import Any

import common

PROMPT = "The capital of France is"


def first_token_seconds(srv: common.Server) -> tuple[float, str]:
    """Stream a /generate; seconds from spawn to the first event carrying text."""
    payload = {"prompt": PROMPT, "max_tokens": 16, "temperature": 0.0, "seed": 1234, "stream": True}
    with srv.client.stream("POST", "/generate", json=payload) as resp:
        if resp.status_code != 200:
            raise RuntimeError(f"/generate stream answered {resp.status_code}: {resp.read()[:300]!r}")
        for line in resp.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            event = json.loads(line[6:])
            if "error" in event:
                raise RuntimeError(f"stream error: {event}")
            if event.get("text"):
                return time.perf_counter() - srv.t_spawn, event["text"]
    raise RuntimeError("stream ended without a token")


def one_start() -> dict[str, Any]:
    with common.running(common.gguf_cmd()) as srv:
        ready = srv.wait_ready()
        first, text = first_token_seconds(srv)
    return {"value": first, "ready": ready, "first_token": first, "text": text}


def main() -> None:
    args = common.parse_args(__doc__)
    res = common.interleave(args.runs, args.warmup, {"spawn": one_start})["spawn"]
    common.report("bench_ttft", args,
                  [common.Comparison("spawn→…", "s", "spawn → /health 200", [r["ready"] for r in res],
                                     "spawn → first streamed token", [r["first_token"] for r in res], 1.3)],
                  extra={"first_token_after_ready_s": [round(r["first_token"] - r["ready"], 4) for r in res],
                         "first_text": res[0]["text"]})


if __name__ == "__main__":
    main()
