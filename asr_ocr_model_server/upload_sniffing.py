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
    if kind is None:
        raise UnsupportedMediaType(
            f"'{filename or 'upload'}' is not a supported {what} file (its bytes match no known format); "
            f"send {accepted}"
        )
    return kind
