"""Sizing decoded uploads, which decides when freed memory is handed back to the OS."""

from __future__ import annotations

import ctypes
import os
import threading

import numpy as np
import pytest
from PIL import Image

from serving_core import memory
from serving_core.memory import TRIM_AFTER_BYTES, approx_nbytes


def test_sizes_of_decoded_audio_and_images() -> None:
    assert approx_nbytes(np.zeros(16_000 * 60, np.float32)) == 16_000 * 60 * 4
    assert approx_nbytes(Image.new("RGB", (3000, 2000))) == 3000 * 2000 * 3
    assert approx_nbytes(Image.new("L", (10, 10))) == 100
    assert approx_nbytes("not an upload") == 0
    # A legal 6300x6300 image is above the trim threshold; a 5 s clip is not.
    assert approx_nbytes(Image.new("RGB", (6300, 6300))) >= TRIM_AFTER_BYTES
    assert approx_nbytes(np.zeros(16_000 * 5, np.float32)) < TRIM_AFTER_BYTES


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(memory._TRIM is None, reason="not glibc: no malloc_trim")
def test_release_freed_memory_hands_freed_heap_blocks_back_to_the_os() -> None:
    # 100 KB heap blocks (below glibc's mmap threshold), every other one freed: the holes cannot merge
    # into the heap's top, so glibc keeps them resident on its own - the RSS that stayed after large
    # /ocr decodes - until trimmed.
    libc = ctypes.CDLL(None)
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    block, count = 100 * 1024, 1000
    blocks = []
    for _ in range(2 * count):
        p = libc.malloc(block)
        assert p
        ctypes.memset(p, 1, block)  # resident
        blocks.append(p)
    kept, freed = blocks[1::2], blocks[0::2]
    try:
        for p in freed:
            libc.free(p)
        held = _rss_bytes()
        errors: list[BaseException] = []

        def trim() -> None:  # from another thread, as the servers call it (any thread will do)
            try:
                memory.release_freed_memory()
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        t = threading.Thread(target=trim)
        t.start()
        t.join(10)
        assert not errors
        released = held - _rss_bytes()
        assert released > 0.75 * block * count, f"{released / 2**20:.0f} MiB of the ~98 MiB freed handed back"
    finally:
        for p in kept:
            libc.free(p)


def test_the_arena_cap_is_set_at_import_unless_the_operator_set_one(monkeypatch) -> None:
    if memory._MALLOPT is None:  # not glibc: nothing to cap
        assert memory.ARENA_LIMIT is None
        return
    expected = max(2, memory.ARENAS_PER_CORE * len(os.sched_getaffinity(0)))
    set_at_import = memory.ARENA_LIMIT
    if "MALLOC_ARENA_MAX" not in os.environ and "GLIBC_TUNABLES" not in os.environ:
        assert set_at_import == expected
    monkeypatch.setenv("MALLOC_ARENA_MAX", "3")
    assert memory.limit_malloc_arenas() is None
    monkeypatch.delenv("MALLOC_ARENA_MAX")
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.arena_max=3")
    assert memory.limit_malloc_arenas() is None
    monkeypatch.delenv("GLIBC_TUNABLES")
    assert memory.limit_malloc_arenas() == expected


def test_release_model_memory_collects_cycles_holding_a_model() -> None:
    import gc
    import weakref

    from serving_core.memory import release_model_memory

    class Model:
        pass

    model = Model()
    model.self_ref = model  # type: ignore[attr-defined]  # a cycle: only the collector frees it
    alive = weakref.ref(model)
    del model
    gc.disable()
    try:
        assert alive() is not None
        release_model_memory()
        assert alive() is None
    finally:
        gc.enable()
