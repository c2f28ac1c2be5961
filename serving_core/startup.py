"""Where a server's start-up time went, as wall-clock marks, for ``GET /health/startup``.

The cold-start tool (and anyone else) reads them instead of parsing logs: process created →
interpreter running our code → imports and configuration done → model loading started → web stack
imported → HTTP listening; and per model its queued, load start and load end times (from the
registry's state transitions). Everything is seconds since the process was created, as the
kernel records it.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field


def process_start_time() -> float | None:
    """When the kernel created this process (epoch seconds, 10 ms resolution), or None off Linux.

    Its age is the system uptime minus its start in clock ticks since boot (both from /proc, so
    no rounding of the boot time enters)."""
    try:
        with open("/proc/self/stat") as f:
            start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])  # field 22, after the command name
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        now = time.time()
    except (OSError, IndexError, ValueError):
        return None
    return now - (uptime - start_ticks / os.sysconf("SC_CLK_TCK"))


@dataclass
class StartupTimeline:
    """Named wall-clock marks of this process's start (first mark wins: a mark is a moment)."""

    process_start: float | None = field(default_factory=process_start_time)
    marks: dict[str, float] = field(default_factory=dict)

    def mark(self, name: str, at: float | None = None) -> None:
        self.marks.setdefault(name, time.time() if at is None else at)

    def since_start(self, at: float) -> float:
        """Seconds from the process's creation (or the first mark) to the wall-clock time ``at``."""
        origin = self.process_start if self.process_start is not None else min(self.marks.values(), default=at)
        return round(at - origin, 4)
