"""Give memory freed by large requests back to the OS."""

from __future__ import annotations

import ctypes
import ctypes.util
from typing import Any

# Decoded uploads at least this large are followed by a trim (below it the trim is not worth a call).
TRIM_AFTER_BYTES = 16 * 1024 * 1024


def _malloc_trim() -> Any:
    try:
        return ctypes.CDLL(ctypes.util.find_library("c")).malloc_trim
    except (OSError, AttributeError, TypeError):
        return None  # not glibc (musl, macOS): nothing to trim


_TRIM = _malloc_trim()


def approx_nbytes(data: Any) -> int:
    """The size of a decoded upload: a numpy array, or a Pillow image."""
    if hasattr(data, "nbytes"):
        return int(data.nbytes)
    size = getattr(data, "size", None)
    if isinstance(size, tuple) and len(size) == 2 and hasattr(data, "getbands"):
        return int(size[0] * size[1] * len(data.getbands()))
    return 0


def release_freed_memory() -> None:
    """Return free heap memory to the OS (glibc ``malloc_trim``).

    glibc keeps freed blocks below its (self-raising, up to 32 MiB) mmap threshold in per-thread
    heaps. After six 6300x6300 PNGs through /ocr that was +500 MB of RSS for good; trimming after
    each large decode brings it back. A fixed low mmap threshold did the same but cost /asr 25 %
    (CTranslate2's large temporaries were then mapped and faulted in on every call).
    """
    if _TRIM is not None:
        _TRIM(0)
