"""Issue 21's API families, measured in one run, interleaved round by round:

- embeddings: inputs per second for requests of 32 short sentences on ``/v1/embeddings``, ours ÷
  llama.cpp's own ``llama-server --embeddings`` (built by scripts/build-llama-server.sh from the
  sources vendored in the pinned llama-cpp-python sdist) on the same GGUF (the embedded
  all-MiniLM-L6-v2, F16), same shape: 2 threads, 32 sequences, batches of 512 tokens, mean pooling
  (target ≥ 1.0). The two servers' vectors are compared too (cosine, reported).
- translation layers: the same greedy request through ``/v1/responses`` and ``/v1/messages`` as
  through ``/v1/chat/completions`` (all streamed, on the embedded Qwen2.5-Coder-0.5B-Instruct, with
  the prompt cache off so that every request evaluates its prompt): time to first text ÷ chat's
  (target ≤ 1.05) and decode tokens/s ÷ chat's (target ≥ 0.97), both measured by the client from
  the stream (tokens from each API's own usage).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import common
import httpx
import numpy as np
from bench_engine_vs_llama_server import llama_server_binary

from model_store.embedded import embedded_model_path

MINILM = embedded_model_path("all-minilm-l6-v2")
QWEN = embedded_model_path("qwen2.5-0.5b-instruct")
PEER, OURS = "llama-server --embeddings", "ours"
SUBJECTS = ["cat", "stock market", "river", "violin", "glacier", "bakery", "satellite", "tomato"]
VERBS = ["is described", "was seen", "makes news", "changes", "is discussed", "appears"]
PROMPT = "Write a long story about a lighthouse keeper and a storm."


def sentences(round_no: int, n: int = 32) -> list[str]:
    """``n`` short sentences, different every round (nothing cached anywhere)."""
    return [f"The {SUBJECTS[(i + round_no) % len(SUBJECTS)]} {VERBS[(i * 7 + round_no) % len(VERBS)]} in report "
            f"{round_no}-{i}." for i in range(n)]


def embed_rate(client: httpx.Client, model: str, round_no: int, requests: int = 5) -> dict[str, Any]:
    """Inputs per second over ``requests`` requests of 32 sentences, one after another."""
    t0 = time.perf_counter()
    vectors: list[list[float]] = []
    errors = 0
    for k in range(requests):
        r = client.post("/v1/embeddings", json={"model": model, "input": sentences(round_no * 100 + k),
                                                "encoding_format": "float"})
        if r.status_code != 200:
            errors += 1
            continue
        vectors = [d["embedding"] for d in r.json()["data"]]
    took = time.perf_counter() - t0
    return {"value": 32 * requests / took, "errors": errors, "last": vectors}


def peer_embed_cmd(binary: str, threads: int, parallel: int, batch: int) -> Callable[[int], list[str]]:
    def build(port: int) -> list[str]:
        return [binary, "-m", str(MINILM), "--host", "127.0.0.1", "--port", str(port), "-t", str(threads),
                "-tb", str(threads), "-np", str(parallel), "-c", str(512 * parallel), "-b", str(batch), "-ub",
                str(batch), "--embeddings", "--pooling", "mean"]
    return build


def our_config(directory: Path, name: str, models: list[dict[str, Any]]) -> Path:
    path = directory / f"{name}.yaml"
    path.write_text(json.dumps({"models": models}))
    return path


def stream_timing(client: httpx.Client, route: str, body: dict[str, Any], text_of: Callable[[dict[str, Any]], str],
                  tokens_of: Callable[[dict[str, Any]], int | None]) -> dict[str, Any]:
    """Time to the first text piece, and decode tokens/s between the first and the last piece."""
    t0 = time.perf_counter()
    first = last = None
    tokens = 0
    with client.stream("POST", route, json=body) as r:
        r.raise_for_status()
        for line in r.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            event = json.loads(line[6:])
            if text_of(event):
                now = time.perf_counter()
                first = first if first is not None else now
                last = now
            tokens = tokens_of(event) or tokens
    if first is None or last is None or tokens < 2 or last <= first:
        return {"ttft": float("nan"), "tps": float("nan"), "tokens": tokens}
    return {"ttft": first - t0, "tps": (tokens - 1) / (last - first), "tokens": tokens}


def chat_stream(client: httpx.Client, max_tokens: int) -> dict[str, Any]:
    body = {"model": "qwen", "max_tokens": max_tokens, "temperature": 0, "stream": True,
            "stream_options": {"include_usage": True}, "messages": [{"role": "user", "content": PROMPT}]}
    return stream_timing(client, "/v1/chat/completions", body,
                         lambda e: (e.get("choices") or [{}])[0].get("delta", {}).get("content") or "",
                         lambda e: (e.get("usage") or {}).get("completion_tokens"))


def responses_stream(client: httpx.Client, max_tokens: int) -> dict[str, Any]:
    body = {"model": "qwen", "max_output_tokens": max_tokens, "temperature": 0, "stream": True, "input": PROMPT}
    return stream_timing(client, "/v1/responses", body,
                         lambda e: e.get("delta", "") if e.get("type") == "response.output_text.delta" else "",
                         lambda e: ((e.get("response") or {}).get("usage") or {}).get("output_tokens"))


def messages_stream(client: httpx.Client, max_tokens: int) -> dict[str, Any]:
    body = {"model": "qwen", "max_tokens": max_tokens, "temperature": 0, "stream": True,
            "messages": [{"role": "user", "content": PROMPT}]}
    return stream_timing(client, "/v1/messages", body,
                         lambda e: (e.get("delta") or {}).get("text", "") if e.get("type") == "content_block_delta"
                         else "",
                         lambda e: (e.get("usage") or {}).get("output_tokens") if e.get("type") == "message_delta"
                         else None)


def main() -> None:
    p = common.parser(__doc__)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--parallel", type=int, default=32, help="embedding sequences (both servers)")
    p.add_argument("--batch", type=int, default=512, help="tokens per embedding decode (both servers)")
    p.add_argument("--max-tokens", type=int, default=64)
    args: argparse.Namespace = p.parse_args()
    binary = llama_server_binary()
    comparisons: list[common.Comparison] = []
    errors = 0
    agreement: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bench-api-") as tmp:
        ours = common.gguf_cmd(our_config(Path(tmp), "embed", [{
            "name": "minilm", "backend": "llama_cpp", "path": str(MINILM),
            "options": {"embeddings": True, "n_ctx": 512, "parallel": args.parallel, "n_batch": args.batch,
                        "n_threads": args.threads}}]))
        peer = peer_embed_cmd(binary, args.threads, args.parallel, args.batch)
        rounds = iter(range(10_000))
        with common.running(peer) as peer_srv, common.running(ours) as our_srv:
            peer_srv.wait_ready(path="/health", ready=common.status_200)
            our_srv.wait_ready()
            for srv in (peer_srv, our_srv):
                srv.client = httpx.Client(base_url=srv.client.base_url, timeout=600.0,
                                          limits=httpx.Limits(max_keepalive_connections=0))
                embed_rate(srv.client, "minilm", 9999, requests=1)  # first decode, outside the rounds
            last: dict[str, list[list[float]]] = {}

            def measure(srv: common.Server, label: str) -> Callable[[], dict[str, Any]]:
                def run() -> dict[str, Any]:
                    result = embed_rate(srv.client, "minilm", next(rounds))
                    last[label] = result.pop("last")
                    return result
                return run

            def agree() -> None:
                if last.get(PEER) and last.get(OURS):
                    a, b = np.array(last[PEER]), np.array(last[OURS])
                    a /= np.linalg.norm(a, axis=1, keepdims=True)
                    agreement.append(float(np.min(np.sum(a * b, axis=1))))

            res = common.interleave(args.runs, args.warmup, {
                PEER: measure(peer_srv, PEER), OURS: measure(our_srv, OURS)}, pause=0.5)
            # The last round's inputs differ between the two (each takes its own round number):
            # compare both on the same 32 sentences once more.
            same = sentences(424242)
            for label, srv in ((PEER, peer_srv), (OURS, our_srv)):
                r = srv.client.post("/v1/embeddings", json={"model": "minilm", "input": same})
                last[label] = [d["embedding"] for d in r.json()["data"]]
            agree()
        errors += sum(r["errors"] for rs in res.values() for r in rs)
        comparisons.append(common.compare(res, PEER, OURS, 1.0, "embeddings, 32 sentences per request",
                                          "inputs/s", higher_is_better=True))

        qwen = common.gguf_cmd(our_config(Path(tmp), "qwen", [{
            "name": "qwen", "backend": "llama_cpp", "path": str(QWEN),
            "options": {"n_ctx": 2048, "parallel": 4, "n_threads": args.threads, "cache_prompt": False}}]))
        with common.running(qwen) as srv:
            srv.wait_ready()
            chat_stream(srv.client, 4)
            fams = common.interleave(args.runs, args.warmup, {
                "chat": lambda: chat_stream(srv.client, args.max_tokens),
                "responses": lambda: responses_stream(srv.client, args.max_tokens),
                "messages": lambda: messages_stream(srv.client, args.max_tokens),
            }, pause=0.2)
        for family in ("responses", "messages"):
            ttft = {k: [{"value": r["ttft"]} for r in fams[k]] for k in ("chat", family)}
            tps = {k: [{"value": r["tps"]} for r in fams[k]] for k in ("chat", family)}
            comparisons += [
                common.compare(ttft, "chat", family, 1.05, f"/v1/{family}: time to first text", "s"),
                common.compare(tps, "chat", family, 0.97, f"/v1/{family}: decode", "tok/s", higher_is_better=True),
            ]
        tokens = {k: statistics.median(r["tokens"] for r in v) for k, v in fams.items()}
    common.report("bench_api_families", args, comparisons,
                  extra={"errors (non-200, all rounds)": errors, "llama-server": binary, "threads": args.threads,
                         "embedding sequences": args.parallel, "embedding batch": args.batch,
                         "cosine ours vs llama-server (min over 32 sentences)": agreement,
                         "tokens per streamed answer (median)": tokens})


if __name__ == "__main__":
    main()
