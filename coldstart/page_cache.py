"""Make "cold" mean cold: evict model files from the page cache before a start."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path


def evict(paths: Iterable[Path], drop_all: bool = True) -> str:
    """Drop the whole page cache when permitted (root), else each file with POSIX_FADV_DONTNEED.

    Returns the method used: "drop_caches" or "fadvise".
    """
    os.sync()
    if drop_all:
        try:
            Path("/proc/sys/vm/drop_caches").write_text("3\n")
            return "drop_caches"
        except OSError:
            pass
    from serving_core.read_ahead import advise  # not at import: the tool imports no server package

    advise(paths, os.POSIX_FADV_DONTNEED)
    return "fadvise"

