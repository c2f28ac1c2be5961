"""The size a GGUF file must have, read from its header: where its last tensor's data ends.

A joined file that is shorter (a missing piece) or longer (a piece twice) than that is wrong even
before its hash is checked. gguf-py's ``GGUFReader`` answers the same question but decodes every
metadata value (10-13 s for a 150k-token vocabulary); this walks the header and skips them.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import BinaryIO

from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

_FIXED = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}  # value type → bytes
_STRING, _ARRAY = 8, 9
_DEFAULT_ALIGNMENT = 32


class GGUFHeaderError(ValueError):
    """Not a GGUF file, or a header this reader does not understand."""


def _u32(f: BinaryIO) -> int:
    return int(struct.unpack("<I", f.read(4))[0])


def _u64(f: BinaryIO) -> int:
    return int(struct.unpack("<Q", f.read(8))[0])


def _skip(f: BinaryIO, n: int) -> None:
    """Move ``n`` bytes on, never past the end of the file (a garbage length is an error, not a read)."""
    here = f.tell()
    if n > _size_of(f) - here:
        raise GGUFHeaderError(f"header field of {n} bytes runs past the end of the file")
    f.seek(here + n)


def _size_of(f: BinaryIO) -> int:
    return os.fstat(f.fileno()).st_size


def _string(f: BinaryIO) -> bytes:
    n = _u64(f)
    here = f.tell()
    _skip(f, n)
    f.seek(here)
    return f.read(n)


def _skip_value(f: BinaryIO, kind: int) -> None:
    if kind in _FIXED:
        _skip(f, _FIXED[kind])
    elif kind == _STRING:
        _skip(f, _u64(f))
    elif kind == _ARRAY:
        item, count = _u32(f), _u64(f)
        if item in _FIXED:
            _skip(f, _FIXED[item] * count)
        else:
            for _ in range(count):
                _skip_value(f, item)
    else:
        raise GGUFHeaderError(f"unknown metadata value type {kind}")


def gguf_data_end(path: Path) -> int:
    """The byte offset where the last tensor's data ends: the file's expected size."""
    try:
        return _data_end(path)
    except (struct.error, ValueError, KeyError) as exc:
        if isinstance(exc, GGUFHeaderError):
            raise
        raise GGUFHeaderError(f"{path}: not a GGUF header this reader understands ({exc})") from None


def _data_end(path: Path) -> int:
    with open(path, "rb") as f:
        if f.read(4) != b"GGUF":
            raise GGUFHeaderError(f"{path}: not a GGUF file")
        version = _u32(f)
        if version < 2:
            raise GGUFHeaderError(f"{path}: GGUF version {version} is not supported")
        n_tensors, n_kv = _u64(f), _u64(f)
        alignment = _DEFAULT_ALIGNMENT
        for _ in range(n_kv):
            key, kind = _string(f), _u32(f)
            if key == b"general.alignment" and kind == 4:
                alignment = _u32(f)
            else:
                _skip_value(f, kind)
        end = 0
        for _ in range(n_tensors):
            _string(f)
            dims = [_u64(f) for _ in range(_u32(f))]
            ggml_type, offset = _u32(f), _u64(f)
            block, type_size = GGML_QUANT_SIZES[GGMLQuantizationType(ggml_type)]
            elements = 1
            for d in dims:
                elements *= d
            end = max(end, offset + elements // block * type_size)
        data_start = -(-f.tell() // alignment) * alignment
        return data_start + end
