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
