"""Uploaded images: check what the bytes are, refuse decompression bombs, decode to RGB."""

from __future__ import annotations

import warnings
from typing import BinaryIO

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


def decode_image(file: BinaryIO, max_pixels: int, filename: str | None = None) -> Image.Image:
    """An RGB image; palette, greyscale and transparent images are converted (transparency onto white)."""
    kind = identify(file, sniff_image, "image", ACCEPTED, filename)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(file)  # reads the header only
            width, height = img.size
            if width * height > max_pixels:
                raise PayloadTooLarge(
                    f"image is {width}x{height} = {width * height} pixels, above the limit of {max_pixels}; "
                    "scale it down"
                )
            img.load()
    except PayloadTooLarge:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise PayloadTooLarge(f"image refused as a decompression bomb: {exc}") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise UnprocessableInput(f"could not decode the {kind} image: {exc}") from None
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGB", rgba.size, "white")
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return img.convert("RGB")
