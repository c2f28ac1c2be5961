"""Uploaded images: check what the bytes are, refuse decompression bombs, decode to RGB."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, BinaryIO

from PIL import Image, UnidentifiedImageError

from asr_ocr_model_server.upload_sniffing import identify
from serving_core.errors import PayloadTooLarge, UnprocessableInput

ACCEPTED = "PNG, JPEG, WebP, TIFF, BMP or GIF"


def sniff_image(head: bytes) -> str | None:
    """The image format the first bytes show, or None."""
    if head[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if head[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff"
    if head[:2] == b"BM":
        return "bmp"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    return None


@dataclass(frozen=True)
class ImageLimits:
    """What an image may be, checked from its header before its pixels are decoded."""

    max_pixels: int = 40_000_000
    min_side: int = 8
    max_aspect_ratio: float = 50.0

    def check(self, width: int, height: int) -> None:
        """Raise 413 for too many pixels, 422 for a shape no text model can read (OCR models resize
        to a fixed side: a 1x39,000,000 image fails inside them after costing ~0.6 GB)."""
        if width * height > self.max_pixels:
            raise PayloadTooLarge(
                f"image is {width}x{height} = {width * height} pixels, above the limit of {self.max_pixels}; "
                "scale it down"
            )
        if min(width, height) < self.min_side:
            raise UnprocessableInput(
                f"image is {width}x{height}; both sides must be at least {self.min_side} pixels"
            )
        if max(width, height) / min(width, height) > self.max_aspect_ratio:
            raise UnprocessableInput(
                f"image is {width}x{height}, an aspect ratio above the limit of {self.max_aspect_ratio:g}:1; "
                "crop or split it"
            )


def limits_from(settings: Any) -> ImageLimits:
    """The image limits of an ``AsrOcrServerSettings``."""
    return ImageLimits(max_pixels=settings.max_image_pixels, min_side=settings.min_image_side,
                       max_aspect_ratio=settings.max_image_aspect_ratio)


@contextmanager
def _decoding(kind: str) -> Iterator[None]:
    """Map Pillow's failures while reading ``kind`` to 413 (bombs) and 422 (broken files)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            yield
    except (PayloadTooLarge, UnprocessableInput):
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise PayloadTooLarge(f"image refused as a decompression bomb: {exc}") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise UnprocessableInput(f"could not decode the {kind} image: {exc}") from None


def open_checked(file: BinaryIO, limits: ImageLimits, filename: str | None) -> tuple[Image.Image, str]:
    """The image with only its header read, after the format, size and shape checks."""
    kind = identify(file, sniff_image, "image", ACCEPTED, filename)
    with _decoding(kind):
        img = Image.open(file)  # reads the header only
        limits.check(*img.size)
    return img, kind


def check_image(file: BinaryIO, limits: ImageLimits, filename: str | None = None) -> None:
    """The cheap checks (what the bytes are, size and shape from the header), for a refusal before
    the request queues for its model."""
    try:
        open_checked(file, limits, filename)  # not close()d: that would close the upload's file too
    finally:
        file.seek(0)


def decode_image(file: BinaryIO, limits: ImageLimits, filename: str | None = None) -> Image.Image:
    """An RGB image; palette, greyscale and transparent images are converted (transparency onto white)."""
    img, kind = open_checked(file, limits, filename)
    with _decoding(kind):
        img.load()
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        img.close()
        background = Image.new("RGB", rgba.size, "white")
        background.paste(rgba, mask=rgba.getchannel("A"))
        rgba.close()
        return background
    if img.mode == "RGB":
        return img
    rgb = img.convert("RGB")
    img.close()  # free the decoded source now (this closes the upload's file too: it is read)
    return rgb
