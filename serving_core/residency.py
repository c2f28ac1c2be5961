"""How much of a model's weight files is in the page cache (``mincore``), for ``/health``.

A memory-mapped model is only as fast as its resident pages: pages not in the cache are read from
disk on first touch, by whichever request touches them. llama.cpp populates its mapping while it
loads (so a GGUF model that reports ready is resident); the page cache can still drop pages later
under memory pressure, which this makes visible.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import mmap
import os
from collections.abc import Sequence
from pathlib import Path

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
_libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p]
_MAP_FAILED = ctypes.c_void_p(-1).value
_PAGE = mmap.PAGESIZE
_RESIDENT_BIT = bytes(b & 1 for b in range(256))  # mincore sets bit 0 per resident page; others reserved


def resident_pages(path: Path) -> tuple[int, int]:
    """(pages of ``path`` in the page cache, pages of ``path``). Maps the file without reading it."""
    size = path.stat().st_size
    pages = -(-size // _PAGE)
    if size == 0:
        return 0, 0
    fd = os.open(path, os.O_RDONLY)
    try:
        addr = _libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
        if addr in (None, _MAP_FAILED):
            raise OSError(ctypes.get_errno(), f"mmap {path}")
        try:
            vec = ctypes.create_string_buffer(pages)
            if _libc.mincore(addr, size, vec) != 0:
                raise OSError(ctypes.get_errno(), f"mincore {path}")
            return vec.raw.translate(_RESIDENT_BIT).count(1), pages
        finally:
            _libc.munmap(addr, size)
    finally:
        os.close(fd)


def resident_fraction(paths: Sequence[Path]) -> float | None:
    """The share of the files' pages in the page cache (None when there is nothing to measure)."""
    resident = total = 0
    for path in paths:
        try:
            r, t = resident_pages(path)
        except OSError:
            continue
        resident += r
        total += t
    return resident / total if total else None
