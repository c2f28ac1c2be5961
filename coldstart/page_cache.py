"""Make "cold" mean cold: evict model files from the page cache before a start."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path


def files_in(paths: Iterable[Path]) -> Iterator[Path]:
    """Each path that is a file, and every file inside each path that is a directory."""
    for p in paths:
        if p.is_dir():
            yield from (f for f in p.rglob("*") if f.is_file())
        elif p.is_file():
            yield p


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
    for f in files_in(paths):
        try:
            fd = os.open(f, os.O_RDONLY)
        except OSError:
            continue
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
    return "fadvise"

