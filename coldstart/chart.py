"""``--chart out.png``: the start-up timeline of one run, one bar per model (matplotlib).

Each bar, in seconds from the tool's spawn of its server: waiting (spawn → its load queued:
interpreter, imports, configuration), loading (its load start → end), loaded (→ the tool saw the
server ready), first inference (ready → the first tiny requests answered).
"""

from __future__ import annotations

from pathlib import Path

from coldstart.measure import ServerResult

SEGMENTS = (("before its load", "#d9d9d9"), ("loading", "#4c72b0"), ("loaded, server not ready", "#55a868"),
            ("first inference", "#dd8452"))


def bars(results: list[ServerResult]) -> list[tuple[str, list[tuple[float, float]]]]:
    """(label, [(start, width) per segment]) for every model the servers reported start-up marks for."""
    out = []
    for r in results:
        st = r.startup
        if not st or st.get("process_start") is None or r.spawn_wall is None or r.ready_s is None:
            continue
        shift = max(0.0, st["process_start"] - r.spawn_wall)  # 10 ms resolution: never below zero
        for name, m in st.get("models", {}).items():
            if m.get("load_start") is None or m.get("load_end") is None:
                continue
            start, end = shift + m["load_start"], shift + m["load_end"]
            ready = max(r.ready_s, end)
            first = r.first_inference_s if r.first_inference_s is not None else ready
            out.append((f"{r.server}: {name}", [(0.0, start), (start, end - start), (end, ready - end),
                                                (ready, first - ready)]))
    return out


def draw(results: list[ServerResult], path: Path) -> Path:
    """Write the timeline of ``results`` (one run) to ``path`` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt

    rows = bars(results)
    if not rows:
        raise ValueError("no start-up marks to draw (servers without GET /health/startup?)")
    fig, ax = plt.subplots(figsize=(9, 0.5 * len(rows) + 1.5))
    for i, (_, segments) in enumerate(rows):
        for (start, width), (label, colour) in zip(segments, SEGMENTS, strict=True):
            ax.barh(i, width, left=start, color=colour, label=label if i == 0 else None)
    ax.set_yticks(range(len(rows)), [label for label, _ in rows])
    ax.invert_yaxis()
    ax.set_xlabel("seconds from spawn")
    ax.set_title("cold start: where each model's time went")
    # Beside the bars, not under them: below the axis it sat on the x-axis label.
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize="small", frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path
