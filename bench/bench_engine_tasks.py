"""Issue 20's engine tasks, against llama.cpp's own ``llama-server`` (built by
scripts/build-llama-server.sh from the sources vendored in the pinned llama-cpp-python sdist) and
against ourselves. Same model (the embedded Qwen2.5-Coder-0.5B-Instruct), 2 threads, 4 sequences of
2048 tokens each, both warm, interleaved round by round:

- structured: a JSON-schema-constrained chat (``response_format`` json_schema), single stream,
  decode tokens/s as each server reports it (ours ``timings.tokens_per_second``, llama-server's
  ``timings.predicted_per_second``): ours ÷ llama-server (target ≥ 1.0); ours constrained ÷ ours
  unconstrained, same prompts (target ≥ 0.8).
- mixed: 4 concurrent chats, 2 constrained + 2 not: the unconstrained ones' decode tokens/s ÷ that
  of 4 unconstrained concurrent chats (target ≥ 0.9): a grammar must not slow its neighbours.
- returning conversations: 16 chats, each with a system prompt of its own (~1,000 tokens) and a
  growing history, taking turns through 4 sequences, so that every chat has lost its sequence to
  others when it returns: time to first token of the returning turns, our RAM prompt cache on ÷ off
  (target ≤ 0.5), and ours ÷ llama-server with ``--cache-ram`` (target ≤ 1.0). Each round uses
  chats of its own, so that nothing carries over between rounds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import common
import httpx
from bench_engine_vs_llama_server import llama_server_binary

from model_store.embedded import embedded_model_path

QWEN = embedded_model_path("qwen2.5-0.5b-instruct")
MODEL = "qwen2.5-0.5b-instruct"
SCHEMA = {"type": "object", "additionalProperties": False, "required": ["name", "age", "city", "hobbies"],
          "properties": {"name": {"type": "string", "maxLength": 40}, "age": {"type": "integer"},
                         "city": {"type": "string", "maxLength": 30},
                         "hobbies": {"type": "array", "maxItems": 3, "items": {"type": "string", "maxLength": 24}}}}
FORMAT = {"type": "json_schema", "json_schema": {"name": "person", "strict": True, "schema": SCHEMA}}
CITIES = ["Lisbon", "Osaka", "Quito", "Tallinn", "Nairobi", "Perth", "Bergen", "Lyon"]
PEER, OURS = "llama-server", "ours"


def peer_cmd(binary: str, threads: int, parallel: int, n_ctx: int, cache_ram_mib: int) -> Callable[[int], list[str]]:
    def build(port: int) -> list[str]:
        return [binary, "-m", str(QWEN), "--host", "127.0.0.1", "--port", str(port), "-t", str(threads),
                "-tb", str(threads), "-np", str(parallel), "-c", str(n_ctx * parallel), "--jinja",
                "--cache-ram", str(cache_ram_mib)]
    return build


def our_config(directory: Path, name: str, threads: int, parallel: int, n_ctx: int, cache_ram_mib: int) -> Path:
    path = directory / f"{name}.yaml"
    path.write_text(json.dumps({"models": [{"name": MODEL, "backend": "llama_cpp", "path": str(QWEN),
                                            "options": {"n_ctx": n_ctx, "parallel": parallel, "n_threads": threads,
                                                        "cache_ram_mib": cache_ram_mib}}]}))
    return path


def decode_speed(body: dict[str, Any]) -> float:
    timings = body.get("timings") or {}
    value = timings.get("tokens_per_second", timings.get("predicted_per_second"))
    return float(value or 0.0)


def chat(client: httpx.Client, messages: list[dict[str, str]], max_tokens: int,
         structured: bool) -> dict[str, Any]:
    body: dict[str, Any] = {"model": MODEL, "messages": messages, "max_tokens": max_tokens, "temperature": 0.0}
    if structured:
        body["response_format"] = FORMAT
    r = client.post("/v1/chat/completions", json=body)
    if r.status_code != 200:
        return {"status": r.status_code, "speed": 0.0, "valid": False}
    data = r.json()
    text = data["choices"][0]["message"]["content"] or ""
    valid = True
    if structured:
        try:
            valid = isinstance(json.loads(text), dict)
        except ValueError:
            valid = False
    return {"status": 200, "speed": decode_speed(data), "valid": valid, "tokens": data["usage"]["completion_tokens"]}


def person(i: int) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"Invent a person who lives in {CITIES[i % len(CITIES)]}: name, age, city "
                                        "and up to three hobbies, as JSON."}]


def single(srv: common.Server, structured: bool) -> dict[str, Any]:
    results = [chat(srv.client, person(i), 96, structured) for i in range(4)]
    return {"value": statistics.median(r["speed"] for r in results),
            "errors": sum(r["status"] != 200 or not r["valid"] for r in results)}


def mixed(srv: common.Server, constrained: int) -> dict[str, Any]:
    """4 concurrent chats, the first ``constrained`` of them with the schema; the decode speed of
    the unconstrained ones."""
    kinds = [i < constrained for i in range(4)]

    def one(i: int) -> dict[str, Any]:
        with httpx.Client(base_url=srv.client.base_url, timeout=600) as c:
            return chat(c, person(i), 96, kinds[i])

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(one, range(4)))
    free = [r["speed"] for r, k in zip(results, kinds, strict=True) if not k]
    return {"value": statistics.mean(free), "errors": sum(r["status"] != 200 or not r["valid"] for r in results)}


def system_prompt(chat_id: str) -> str:
    facts = " ".join(f"Fact {i}: the item {chat_id}-{i} costs {(hash(chat_id) + i * 17) % 97} coins and weighs "
                     f"{(i * 13) % 50} grams." for i in range(48))
    return f"You are the shop assistant of store {chat_id}. Answer from these facts only. {facts}"


def first_token_seconds(client: httpx.Client, messages: list[dict[str, str]]) -> tuple[float, str]:
    body = {"model": MODEL, "messages": messages, "max_tokens": 12, "temperature": 0.0, "stream": True}
    t0 = time.perf_counter()
    first: float | None = None
    text = ""
    with client.stream("POST", "/v1/chat/completions", json=body) as r:
        r.raise_for_status()
        for line in r.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            choices = json.loads(line[6:]).get("choices") or []
            piece = choices[0].get("delta", {}).get("content") if choices else None
            if piece:
                first = first if first is not None else time.perf_counter() - t0
                text += piece
    return (first if first is not None else time.perf_counter() - t0), text


def returning(srv: common.Server, tag: str, chats: int) -> dict[str, Any]:
    """Two turns of ``chats`` conversations, one after another: the second turn of each is a return."""
    histories = [[{"role": "system", "content": system_prompt(f"{tag}{c}")},
                  {"role": "user", "content": f"What does item {tag}{c}-3 cost?"}] for c in range(chats)]
    for messages in histories:  # first turns: fill the sequences (and, evicted, the RAM cache)
        _, answer = first_token_seconds(srv.client, messages)
        messages += [{"role": "assistant", "content": answer}, {"role": "user", "content": "And item 7?"}]
    waits = [first_token_seconds(srv.client, messages)[0] for messages in histories]
    return {"value": statistics.median(waits), "mean": statistics.mean(waits)}


def fresh_connections(*servers: common.Server) -> None:
    """A new connection per request: llama-server's HTTP library closes a keep-alive connection after
    5 requests, and a POST sent on it just then fails ("Server disconnected"). Same for ours: fair."""
    for srv in servers:
        srv.client = httpx.Client(base_url=srv.client.base_url, timeout=600.0,
                                  limits=httpx.Limits(max_keepalive_connections=0))


def main() -> None:
    p = common.parser(__doc__)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--parallel", type=int, default=4)
    p.add_argument("--n-ctx", type=int, default=2048, help="per sequence")
    p.add_argument("--chats", type=int, default=16)
    p.add_argument("--skip-returning", action="store_true")
    args: argparse.Namespace = p.parse_args()
    binary = llama_server_binary()
    shape = (args.threads, args.parallel, args.n_ctx)
    comparisons: list[common.Comparison] = []
    errors = 0
    with tempfile.TemporaryDirectory(prefix="bench-tasks-") as tmp:
        ours = common.gguf_cmd(our_config(Path(tmp), "ours", *shape, cache_ram_mib=2048))
        ours_off = common.gguf_cmd(our_config(Path(tmp), "off", *shape, cache_ram_mib=0))
        peer = peer_cmd(binary, *shape, cache_ram_mib=2048)
        with common.running(peer) as peer_srv, common.running(ours) as our_srv:
            peer_srv.wait_ready(path="/health", ready=common.status_200)
            our_srv.wait_ready()
            fresh_connections(peer_srv, our_srv)
            for srv in (peer_srv, our_srv):
                chat(srv.client, person(0), 4, True)  # first decode and first grammar, outside the rounds
            res = common.interleave(args.runs, args.warmup, {
                f"{PEER} structured": lambda: single(peer_srv, True),
                f"{OURS} structured": lambda: single(our_srv, True),
                f"{OURS} free": lambda: single(our_srv, False),
                f"{OURS} 4 free": lambda: mixed(our_srv, 0),
                f"{OURS} 2 free + 2 structured": lambda: mixed(our_srv, 2),
            }, pause=1.0)  # a server that just answered may still be busy (llama-server saves idle slots)
        errors += sum(r["errors"] for rs in res.values() for r in rs)
        comparisons += [
            common.compare(res, f"{PEER} structured", f"{OURS} structured", 1.0, "structured decode", "tok/s",
                           higher_is_better=True),
            common.compare(res, f"{OURS} free", f"{OURS} structured", 0.8, "ours: structured ÷ free", "tok/s",
                           higher_is_better=True),
            common.compare(res, f"{OURS} 4 free", f"{OURS} 2 free + 2 structured", 0.9,
                           "ours: free beside 2 structured ÷ beside 2 free", "tok/s", higher_is_better=True),
        ]
        if not args.skip_returning:
            rounds = iter(range(10_000))
            with common.running(peer) as peer_srv, common.running(ours) as our_srv, \
                    common.running(ours_off) as off_srv:
                peer_srv.wait_ready(path="/health", ready=common.status_200)
                our_srv.wait_ready()
                off_srv.wait_ready()
                fresh_connections(peer_srv, our_srv, off_srv)
                back = common.interleave(args.runs, args.warmup, {
                    "ours, RAM cache off": lambda: returning(off_srv, f"r{next(rounds)}x", args.chats),
                    "ours, RAM cache on": lambda: returning(our_srv, f"r{next(rounds)}x", args.chats),
                    f"{PEER} --cache-ram": lambda: returning(peer_srv, f"r{next(rounds)}x", args.chats),
                }, pause=1.0)
            comparisons += [
                common.compare(back, "ours, RAM cache off", "ours, RAM cache on", 0.5,
                               "returning turn: first token"),
                common.compare(back, f"{PEER} --cache-ram", "ours, RAM cache on", 1.0,
                               "returning turn: first token"),
            ]
    common.report("bench_engine_tasks", args, comparisons,
                  extra={"errors (non-200 or invalid JSON, all rounds)": errors, "llama-server": binary,
                         "threads": args.threads, "parallel": args.parallel, "n_ctx_per_sequence": args.n_ctx,
                         "chats": args.chats})


if __name__ == "__main__":
    main()
