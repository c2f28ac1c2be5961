"""Summaries (median and spread over repeats), the terminal table, and the JSON file."""

from __future__ import annotations

import statistics
from typing import Any

from coldstart.measure import ServerResult

FIGURES = ("live_s", "ready_s", "first_inference_s")


def spread(values: list[float]) -> dict[str, float | int] | None:
    if not values:
        return None
    return {"median": round(statistics.median(values), 3), "min": round(min(values), 3),
            "max": round(max(values), 3), "n": len(values)}


def summarize(runs: list[list[ServerResult]]) -> dict[str, dict[str, Any]]:
    """``{mode: {server: {figure: spread, "models": {name: spread of load_seconds}}}}``."""
    out: dict[str, dict[str, Any]] = {}
    for run in runs:
        for r in run:
            entry = out.setdefault(r.mode, {}).setdefault(r.server, {"_values": {}, "_models": {}, "_first": {},
                                                                     "_bytes": {}})
            for f in FIGURES:
                v = getattr(r, f)
                if v is not None:
                    entry["_values"].setdefault(f, []).append(v)
            for name, m in r.models.items():
                if m.get("load_seconds") is not None:
                    entry["_models"].setdefault(name, []).append(m["load_seconds"])
                if name in r.model_first_request_s:
                    entry["_first"].setdefault(name, []).append(r.model_first_request_s[name])
                if name in r.model_bytes:
                    entry["_bytes"][name] = r.model_bytes[name]
    for servers in out.values():
        for server, entry in servers.items():
            values, models = entry.pop("_values"), entry.pop("_models")
            first, sizes = entry.pop("_first"), entry.pop("_bytes")
            servers[server] = {f: spread(values.get(f, [])) for f in FIGURES}
            servers[server]["models"] = {n: spread(v) for n, v in models.items()}
            servers[server]["model_first_request_s"] = {n: spread(v) for n, v in first.items()}
            servers[server]["model_bytes"] = sizes
    if "parallel" in out and "sequential" in out:
        out["parallel_vs_sequential"] = {}
        for server, figs in out["parallel"].items():
            seq = out["sequential"].get(server, {})
            a, b = (figs.get("ready_s") or {}).get("median"), (seq.get("ready_s") or {}).get("median")
            if a and b:
                out["parallel_vs_sequential"][server] = {"ready_ratio": round(a / b, 3)}
    return out


def _fmt(s: dict[str, Any] | None, repeats: int) -> str:
    if not s:
        return "-"
    if repeats > 1:
        return f"{s['median']:.2f} ({s['min']:.2f}-{s['max']:.2f})"
    return f"{s['median']:.2f}"


def table(summary: dict[str, dict[str, Any]], repeats: int) -> str:
    """A plain-text table: one row per (mode, server), then one row per model."""
    head = ("mode", "server / model", "first answer s", "ready s", "first inference s", "model load s", "MB",
            "MB/s", "first request s")
    rows: list[tuple[str, ...]] = [head]
    for mode, servers in summary.items():
        if mode == "parallel_vs_sequential":
            continue
        for server, figs in servers.items():
            rows.append((mode, server, _fmt(figs["live_s"], repeats), _fmt(figs["ready_s"], repeats),
                         _fmt(figs["first_inference_s"], repeats), "", "", "", ""))
            for name, s in figs["models"].items():
                size = figs["model_bytes"].get(name)
                rate = f"{size / 1e6 / s['median']:.0f}" if size and s and s["median"] else ""
                rows.append(("", f"  {name}", "", "", "", _fmt(s, repeats), f"{size / 1e6:.0f}" if size else "",
                             rate, _fmt(figs["model_first_request_s"].get(name), repeats)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    for server, ratio in summary.get("parallel_vs_sequential", {}).items():
        lines.append(f"parallel / sequential time to ready, {server}: {ratio['ready_ratio']:.2f}")
    if repeats > 1:
        lines.append(f"(median over {repeats} starts, min-max in brackets; seconds from spawn)")
    return "\n".join(lines)


def breakdown(r: ServerResult) -> str | None:
    """Where one server's start went, in seconds from the tool's spawn (the server's /health/startup
    marks, shifted by when the kernel created the process)."""
    st = r.startup
    if not st or st.get("process_start") is None or r.spawn_wall is None:
        return None
    # spawn → process created; the kernel's start time has 10 ms resolution, so never below zero
    shift = max(0.0, st["process_start"] - r.spawn_wall)
    marks = st.get("marks", {})
    steps = [("process", 0.0), ("our code", marks.get("interpreter")), ("imports+config", marks.get("configured")),
             ("web stack", marks.get("web_stack_ready")), ("HTTP", marks.get("listening")),
             ("models loaded", st.get("ready"))]
    parts = [f"{name} {shift + at:.2f}" for name, at in steps if at is not None]
    if r.ready_s is not None:
        parts.append(f"ready seen {r.ready_s:.2f}")
    if r.first_inference_s is not None:
        parts.append(f"first inference {r.first_inference_s:.2f}")
    lines = [f"{r.server} ({r.mode}), s from spawn: " + " → ".join(parts)]
    for name, m in st.get("models", {}).items():
        if m.get("load_start") is not None and m.get("load_end") is not None:
            lines.append(f"    {name}: queued {shift + m['queued']:.2f}, load {shift + m['load_start']:.2f} → "
                         f"{shift + m['load_end']:.2f} ({m['state']})")
    return "\n".join(lines)


# A first request slower than this many times its model's load, and than SLOW_FIRST_FLOOR_S, is flagged.
SLOW_FIRST_RATIO = 3.0
SLOW_FIRST_FLOOR_S = 2.0


def slow_first_requests(r: ServerResult) -> list[str]:
    """Models whose first request took far longer than their load: the start looked fast, but the
    first user waited (e.g. Whisper decoding silence with every temperature fallback)."""
    out = []
    for name, first in r.model_first_request_s.items():
        load = (r.models.get(name) or {}).get("load_seconds")
        if load is not None and first > max(SLOW_FIRST_FLOOR_S, SLOW_FIRST_RATIO * load):
            out.append(f"{r.server}: model '{name}' answered its first request in {first:.2f} s, {first / load:.0f}x "
                       f"its load ({load:.2f} s): the start looks fast but the first user waits (turn on `warmup` "
                       "for it, or check the machine's load)")
    return out
