"""Field types shared by request models."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator


def _encodable(value: str) -> str:
    # JSON may carry "\ud800" escapes that decode to lone UTF-16 surrogates: a Python str, but not
    # Unicode text. Tokenizers, logs and the JSON response all fail to encode them later.
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(
            f"contains a lone UTF-16 surrogate ({value[exc.start]!r} at character {exc.start}); "
            "send valid Unicode text"
        ) from None
    return value


Text = Annotated[str, AfterValidator(_encodable)]
"""A string that is valid Unicode (encodable as UTF-8)."""
