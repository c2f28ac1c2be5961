"""Field types shared by request models."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator
from pydantic_core import PydanticCustomError


def invalid(reason: str) -> PydanticCustomError:
    """The error a validator raises for a value it refuses (422 "field: reason").

    Not a ValueError: pydantic keeps a ValueError in the error's context, and the exception's
    traceback holds the validator's frame and so the refused value, in a reference cycle with the
    request's error list. A cycle waits for a full garbage collection, which a few large objects
    rarely trigger: every refused multi-megabyte body then stayed in memory (+40 MB per request
    with a 6 MB ``metadata``).
    """
    return PydanticCustomError("value_error", "{reason}", {"reason": reason})


def _encodable(value: str) -> str:
    # JSON may carry "\ud800" escapes that decode to lone UTF-16 surrogates: a Python str, but not
    # Unicode text. Tokenizers, logs and the JSON response all fail to encode them later.
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise invalid(
            f"contains a lone UTF-16 surrogate ({value[exc.start]!r} at character {exc.start}); "
            "send valid Unicode text"
        ) from None
    return value


Text = Annotated[str, AfterValidator(_encodable)]
"""A string that is valid Unicode (encodable as UTF-8)."""
