"""POST /generate tokens/s on the GGUF server (embedded Gemma 3 270M, default settings: n_ctx 2048,
n_threads = cores): max_tokens 128, temperature 0, fixed seed, prompt "The capital of France is",
usage.completion_tokens ÷ client wall time — divided by in-process llama-cpp-python tokens/s
(Llama(n_ctx=2048, n_threads=os.cpu_count()).create_completion, same params, timed around the call)
in a separate long-lived process. Both processes stay up; calls alternate. Target ≥ 0.95.
"""

from __future__ import annotations

from typing import Any

import common

PROMPT = "The capital of France is"
SEED = 1234
BASE = "in-process llama-cpp-python"
OURS = "server /generate"


def main() -> None:
    p = common.parser(__doc__)
    p.add_argument("--max-tokens", type=int, default=128)
    args = p.parse_args()
    with common.Worker("llama-worker", str(common.GEMMA)) as worker, common.running(common.gguf_cmd()) as srv:
        srv.wait_ready()

        def ours() -> dict[str, Any]:
            r = common.generate(srv.client, None, PROMPT, args.max_tokens, SEED)
            if r["status"] != 200:
                raise RuntimeError(f"/generate failed: {r}")
            return {"value": r["completion_tokens"] / r["seconds"], "tokens": r["completion_tokens"],
                    "text": r["body"]["text"]}

        def base() -> dict[str, Any]:
            r = worker.call(prompt=PROMPT, max_tokens=args.max_tokens, seed=SEED)
            return {**r, "tokens": r["completion_tokens"]}

        # A short pause after each call lets OpenMP worker threads stop spinning before the other side runs.
        res = common.interleave(args.runs, args.warmup, {BASE: base, OURS: ours}, pause=0.3)
    same_text = all(a["text"] == b["text"] for a, b in zip(res[BASE], res[OURS], strict=True))
    common.report("bench_generate_throughput", args,
                  [common.compare(res, BASE, OURS, 0.95, "decode throughput", "tok/s", higher_is_better=True)],
                  extra={"completion_tokens (baseline, ours)": [res[BASE][0]["tokens"], res[OURS][0]["tokens"]],
                         "same_text": same_text, "text": res[OURS][0]["text"][:80]})


if __name__ == "__main__":
    main()
