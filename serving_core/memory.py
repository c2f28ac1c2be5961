"""Give memory freed by large requests and unloaded models back to the OS."""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import os
from typing import Any

# Decoded uploads at least this large are followed by a trim (below it the trim is not worth a call).
TRIM_AFTER_BYTES = 16 * 1024 * 1024


def _libc() -> Any:
    try:
        return ctypes.CDLL(ctypes.util.find_library("c"))
    except (OSError, TypeError):
        return None


_LIBC = _libc()
# Not glibc (musl, macOS): no malloc_trim or mallopt, and the calls below do nothing.
_TRIM = getattr(_LIBC, "malloc_trim", None)
_MALLOPT = getattr(_LIBC, "mallopt", None)

# mallopt's parameter for the most malloc arenas (glibc's malloc.h: M_ARENA_MAX).
_M_ARENA_MAX = -8
# glibc's default is 8 arenas per core. Each model load runs in a new thread and the backends start
# worker threads of their own: their blocks spread over up to 16 arenas (on 2 cores), and what
# stayed live in each kept it resident. After a 29-min transcription and three 40 Mpx OCR calls, 20
# load/unload cycles of both ASR/OCR models added +88 MB (RssAnon, models unloaded, trimmed every
# time); with 2 arenas per core, +1 MB. /asr and /ocr were no slower (bench/bench_asr_memory.py).
ARENAS_PER_CORE = 2


def limit_malloc_arenas(per_core: int = ARENAS_PER_CORE) -> int | None:
    """Cap glibc's malloc arenas at ``per_core`` × the usable cores; the cap set, or None.

    glibc fixes its limit once more than 8 arenas exist, so this runs at import (the registry
    imports this module before any model loads). An operator's own ``MALLOC_ARENA_MAX`` or
    ``GLIBC_TUNABLES`` (read by glibc at exec) is left alone.
    """
    if _MALLOPT is None or "MALLOC_ARENA_MAX" in os.environ or "arena_max" in os.environ.get("GLIBC_TUNABLES", ""):
        return None
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    arenas = max(2, per_core * cores)
    return arenas if _MALLOPT(_M_ARENA_MAX, arenas) == 1 else None


ARENA_LIMIT = limit_malloc_arenas()


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


def release_model_memory() -> None:
    """After a model was freed: collect the cycles that may still hold it, then trim every arena.

    Without this an unloaded model's heap blocks stayed resident, models unloaded: +222 MB on the
    ASR server after 20 load/unload cycles of its two models, +615 MB on the GGUF server after 20
    of Gemma 3 270M. Called by the registry after every unload.
    """
    gc.collect()
    release_freed_memory()
