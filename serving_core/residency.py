"""How much of a model's memory-mapped weights is resident in this process, for ``/health``.

Read from ``/proc/self/smaps``: for every mapping of a weight file, its resident bytes (``Rss``)
against its mapped size (``Size``). That is what a request touching the weights will find: pages
counted there are in memory and mapped; the rest are read from disk by whichever request touches
them first. Mapped size, not file size: llama.cpp unmaps the ranges whose tensors it copied
elsewhere (repacked weights). One read of smaps covers every model, whatever their size, and
needs no permission on the files (``mincore`` reports every page resident to a process that
neither owns nor may write the file — the images' non-root user and read-only volumes).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Generic, TypeVar

H = TypeVar("H")


def mapped_files() -> dict[str, tuple[int, int]]:
    """{path: (resident kB, mapped kB)} over this process's file mappings."""
    out: dict[str, tuple[int, int]] = {}
    current: str | None = None
    size = rss = 0
    try:
        with open("/proc/self/smaps") as f:
            for line in f:
                head = line.split(None, 5)
                if len(head) >= 5 and "-" in head[0] and not line[0].isupper():
                    if current is not None:
                        r, s = out.get(current, (0, 0))
                        out[current] = (r + rss, s + size)
                    current = head[5].strip() if len(head) == 6 and head[5].startswith("/") else None
                    size = rss = 0
                elif line.startswith("Size:"):
                    size = int(line.split()[1])
                elif line.startswith("Rss:"):
                    rss = int(line.split()[1])
    except OSError:
        return {}
    if current is not None:
        r, s = out.get(current, (0, 0))
        out[current] = (r + rss, s + size)
    return out


def resident_fraction(paths: Iterable[Path], mappings: dict[str, tuple[int, int]] | None = None) -> float | None:
    """The resident share of these files' mappings in this process (None when none is mapped)."""
    mappings = mapped_files() if mappings is None else mappings
    resident = mapped = 0
    for path in paths:
        r, s = mappings.get(str(Path(path).resolve()), (0, 0))
        resident += r
        mapped += s
    return min(1.0, resident / mapped) if mapped else None


class WeightResidency(Generic[H]):
    """The resident share of a loaded handle's mapped weights, for ``/health``. ``weights`` names the
    files a handle maps (none: not reported). This process's mappings are read at most twice a second
    for all models together: one read of /proc/self/smaps, ~1 ms."""

    def __init__(self, weights: Callable[[H], Sequence[Path]] | None) -> None:
        self._weights = weights
        self._mappings: dict[str, tuple[int, int]] = {}
        self._read_at = float("-inf")

    def of(self, handle: H | None) -> float | None:
        if self._weights is None or handle is None:
            return None
        now = time.monotonic()
        if now - self._read_at > 0.5:
            self._mappings = mapped_files()
            self._read_at = now
        fraction = resident_fraction(self._weights(handle), self._mappings)
        return None if fraction is None else round(fraction, 4)
