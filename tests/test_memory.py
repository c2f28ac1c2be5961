"""Sizing decoded uploads, which decides when freed memory is handed back to the OS."""

from __future__ import annotations

import numpy as np
from PIL import Image

from serving_core.memory import TRIM_AFTER_BYTES, approx_nbytes, release_freed_memory


def test_sizes_of_decoded_audio_and_images() -> None:
    assert approx_nbytes(np.zeros(16_000 * 60, np.float32)) == 16_000 * 60 * 4
    assert approx_nbytes(Image.new("RGB", (3000, 2000))) == 3000 * 2000 * 3
    assert approx_nbytes(Image.new("L", (10, 10))) == 100
    assert approx_nbytes("not an upload") == 0
    # A legal 6300x6300 image is above the trim threshold; a 5 s clip is not.
    assert approx_nbytes(Image.new("RGB", (6300, 6300))) >= TRIM_AFTER_BYTES
    assert approx_nbytes(np.zeros(16_000 * 5, np.float32)) < TRIM_AFTER_BYTES


def test_release_freed_memory_is_callable_from_any_thread() -> None:
    import threading

    errors: list[BaseException] = []

    def trim() -> None:
        try:
            release_freed_memory()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    t = threading.Thread(target=trim)
    t.start()
    t.join(10)
    assert not errors


def test_the_arena_cap_is_set_at_import_unless_the_operator_set_one(monkeypatch) -> None:
    import os

    from serving_core import memory

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
