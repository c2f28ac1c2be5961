"""What every OCR backend returns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from PIL import Image


@dataclass
class TextLine:
    text: str
    confidence: float | None
    box: list[list[float]] | None  # four [x, y] corners, clockwise from top-left


@runtime_checkable
class OcrModel(Protocol):
    def read(self, image: Image.Image) -> list[TextLine]: ...

    def warmup(self) -> None: ...


def blank_image() -> Image.Image:
    """A small white image, for warmup."""
    return Image.new("RGB", (64, 32), "white")
