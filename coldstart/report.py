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
            entry = out.setdefault(r.mode, {}).setdefault(r.server, {"_values": {}, "_models": {}})
            for f in FIGURES:
                v = getattr(r, f)
                if v is not None:
                    entry["_values"].setdefault(f, []).append(v)
            for name, m in r.models.items():
                if m.get("load_seconds") is not None:
                    entry["_models"].setdefault(name, []).append(m["load_seconds"])
    for servers in out.values():
        for server, entry in servers.items():
            values, models = entry.pop("_values"), entry.pop("_models")
            servers[server] = {f: spread(values.get(f, [])) for f in FIGURES}
            servers[server]["models"] = {n: spread(v) for n, v in models.items()}
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
    head = ("mode", "server / model", "first answer s", "ready s", "first inference s", "model load s")
    rows: list[tuple[str, ...]] = [head]
    for mode, servers in summary.items():
        if mode == "parallel_vs_sequential":
            continue
        for server, figs in servers.items():
            rows.append((mode, server, _fmt(figs["live_s"], repeats), _fmt(figs["ready_s"], repeats),
                         _fmt(figs["first_inference_s"], repeats), ""))
            for name, s in figs["models"].items():
                rows.append(("", f"  {name}", "", "", "", _fmt(s, repeats)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    for server, ratio in summary.get("parallel_vs_sequential", {}).items():
        lines.append(f"parallel / sequential time to ready, {server}: {ratio['ready_ratio']:.2f}")
    if repeats > 1:
        lines.append(f"(median over {repeats} starts, min-max in brackets; seconds from spawn)")
    return "\n".join(lines)
