"""Start reading the weight files into the page cache before anything needs them.

A cold start reads the weights and imports Python libraries; those can overlap. The loads read
the files only once their model library is imported and the load has begun, and llama.cpp faults
the mapped pages in a few at a time. Asked at once (``POSIX_FADV_WILLNEED`` on each whole file, from
a thread: the call itself may block while it queues the reads), the kernel reads the files in large
sequential requests while the interpreter imports. On a warm cache it costs one system call per
file. Linux-only in effect (elsewhere ``posix_fadvise`` is missing and nothing happens).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

log = logging.getLogger("serving_core.read_ahead")


def files_in(paths: Iterable[Path]) -> Iterator[Path]:
    """Each path that is a file, and every file inside each path that is a directory."""
    for p in paths:
        if p.is_dir():
            yield from sorted(f for f in p.rglob("*") if f.is_file())
        elif p.is_file():
            yield p


def advise(paths: Iterable[Path], advice: int) -> list[Path]:
    """``posix_fadvise`` ``advice`` on each whole file of ``paths`` (directories walked); the files
    advised (unreadable ones skipped)."""
    done = []
    for f in files_in(paths):
        try:
            fd = os.open(f, os.O_RDONLY)
        except OSError:
            continue
        try:
            os.posix_fadvise(fd, 0, 0, advice)
            done.append(f)
        except OSError:
            pass
        finally:
            os.close(fd)
    return done


def start(paths: list[Path]) -> threading.Thread | None:
    """Ask for ``paths`` to be read into the page cache, in a daemon thread; None where the platform
    has no ``posix_fadvise`` or there is nothing to read."""
    if not paths or not hasattr(os, "posix_fadvise"):
        return None

    def run() -> None:
        t0 = time.perf_counter()
        files = advise(paths, os.POSIX_FADV_WILLNEED)
        size = sum(f.stat().st_size for f in files)
        log.info("read-ahead of %d weight files (%.0f MB) requested in %.2f s", len(files), size / 1e6,
                 time.perf_counter() - t0)

    thread = threading.Thread(target=run, name="read-ahead", daemon=True)
    thread.start()
    return thread
