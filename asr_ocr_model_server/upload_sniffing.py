"""Identify an upload by its first bytes, not by the content type the client declared."""

from __future__ import annotations

from collections.abc import Callable
from typing import BinaryIO

from serving_core.errors import UnprocessableInput, UnsupportedMediaType


def identify(file: BinaryIO, sniff: Callable[[bytes], str | None], what: str, accepted: str,
             filename: str | None) -> str:
    """The format ``sniff`` finds in the head of ``file`` (rewound after); 422 if empty, 415 if unknown."""
    head = file.read(16)
    file.seek(0)
    if not head:
        raise UnprocessableInput(f"the {what} file is empty")
    kind = sniff(head)
    other = _recognised_elsewhere(head)
    if kind is None and other is not None:
        raise UnsupportedMediaType(f"'{filename or 'upload'}' is {other}, not a supported {what} file; send {accepted}")
    if kind is None:
        raise UnsupportedMediaType(
            f"'{filename or 'upload'}' is not a supported {what} file (its bytes match no known format); "
            f"send {accepted}"
        )
    return kind


# Formats people send by mistake, named in the refusal (a bare "no known format" leaves them guessing).
_ELSEWHERE = ((b"%PDF", "a PDF document (send it to /ocr to read its pages)"),
              (b"PK\x03\x04", "a ZIP archive (or an Office document)"),
              (b"\x7fELF", "a program (ELF)"),
              (b"{", "JSON text"))


def _recognised_elsewhere(head: bytes) -> str | None:
    return next((what for magic, what in _ELSEWHERE if head.startswith(magic)), None)
