"""Uploaded documents of several pages: PDFs (rendered with pypdfium2) and multi-page TIFFs.

A document is opened twice: once for the cheap checks before the request queues (what it is, how
many pages, the selection, the limit), and once inside its model's turn, where pages are rendered
and read one at a time, so memory holds one page whatever the page count.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, BinaryIO

from PIL import Image

from asr_ocr_model_server.image_input import ImageLimits, open_checked, sniff_image
from serving_core.errors import BadRequest, PayloadTooLarge, UnprocessableInput
from serving_core.memory import release_freed_memory

# PDFium is not thread-safe, not even across documents (pypdfium2's documentation: concurrent calls
# crash or corrupt the process). The checks run in any worker thread and pages render in the
# model's, so every PDFium call in the process goes through this one lock.
_PDFIUM = threading.RLock()
POINTS_PER_INCH = 72

_SELECTION = re.compile(r"^\s*\d+\s*(-\s*\d+\s*)?(,\s*\d+\s*(-\s*\d+\s*)?)*$")


def sniff_document(head: bytes) -> str | None:
    """``pdf`` or ``tiff`` (possibly one page: it is read the same way), else None."""
    if head.startswith(b"%PDF-"):
        return "pdf"
    return "tiff" if sniff_image(head) == "tiff" else None


def parse_pages(selection: str | None, count: int) -> list[int]:
    """1-based ``"1-3,7"`` → sorted 0-based page indices of a ``count``-page document (all if None)."""
    if selection is None or not selection.strip():
        return list(range(count))
    if not _SELECTION.match(selection):
        raise BadRequest(f"pages '{selection}' is not a page selection; write e.g. '1-3,7'", param="pages")
    chosen: set[int] = set()
    for part in selection.split(","):
        first, _, last = part.partition("-")
        lo, hi = int(first), int(last or first)
        if lo < 1 or hi < lo:
            raise BadRequest(f"pages '{part.strip()}' is not a range of pages counted from 1", param="pages")
        if hi > count:
            raise BadRequest(f"pages '{part.strip()}' is beyond the document's {count} pages", param="pages")
        chosen.update(range(lo - 1, hi))
    return sorted(chosen)


@dataclass(frozen=True)
class DocumentLimits:
    max_pages: int
    dpi: int
    image: ImageLimits


@dataclass
class Page:
    number: int  # 1-based
    image: Image.Image


class Document:
    """An opened multi-page upload: its page count, and its selected pages rendered one by one."""

    def __init__(self, file: BinaryIO, kind: str, limits: DocumentLimits, selection: str | None) -> None:
        self.kind = kind
        self.limits = limits
        self._file = file
        self._pdf: Any = None
        self._tiff: Image.Image | None = None
        try:
            if kind == "pdf":
                self._pdf = _open_pdf(file)
                with _PDFIUM:
                    self.page_count = len(self._pdf)
            else:
                self._tiff, _ = open_checked(file, limits.image, None)
                self.page_count = int(getattr(self._tiff, "n_frames", 1))
            self.pages = parse_pages(selection, self.page_count)
            if len(self.pages) > limits.max_pages:
                raise PayloadTooLarge(
                    f"{len(self.pages)} pages selected, above the limit of {limits.max_pages} per request; "
                    "send fewer with `pages` (e.g. '1-20') or split the document")
        except BaseException:
            self.close()  # never left to the garbage collector, which may close it in any thread
            raise

    def close(self) -> None:
        if self._pdf is not None:
            with _PDFIUM:
                self._pdf.close()
            self._pdf = None
        self._file.seek(0)

    def rendered(self) -> Iterator[Page]:
        """The selected pages as RGB images, one at a time (each closed once the next is asked for)."""
        for index in self.pages:
            image = self._render_pdf(index) if self._pdf is not None else self._tiff_frame(index)
            try:
                yield Page(number=index + 1, image=image)
            finally:
                image.close()
                # The page's transients (its bitmap, the OCR model's tensors: ~100 MB at 200 dpi)
                # went back to glibc's heaps, which keep them: return them before the next page,
                # or a document's pages pile them up in different heaps (peak +354 MB over idle for
                # 20 pages, docs/BENCHMARKS.md row 18f).
                release_freed_memory()

    def _render_pdf(self, index: int) -> Image.Image:
        scale = self.limits.dpi / POINTS_PER_INCH
        with _PDFIUM, _pdf_errors(f"page {index + 1}"):
            page = self._pdf[index]
            try:
                width, height = page.get_size()
                self.limits.image.check(max(1, round(width * scale)), max(1, round(height * scale)))
                bitmap = page.render(scale=scale)
                try:
                    image: Image.Image = bitmap.to_pil().convert("RGB")
                finally:
                    bitmap.close()
            finally:
                page.close()
        return image

    def _tiff_frame(self, index: int) -> Image.Image:
        assert self._tiff is not None
        try:
            self._tiff.seek(index)
            self.limits.image.check(*self._tiff.size)
            self._tiff.load()
            return self._tiff.convert("RGB")
        except (PayloadTooLarge, UnprocessableInput):
            raise
        except (OSError, ValueError, EOFError) as exc:
            raise UnprocessableInput(f"could not decode page {index + 1} of the TIFF: {exc}") from None


def _open_pdf(file: BinaryIO) -> Any:
    import pypdfium2

    with _PDFIUM, _pdf_errors("the document"):
        return pypdfium2.PdfDocument(file)


@contextmanager
def _pdf_errors(what: str) -> Iterator[None]:
    """PDFium's failures as 422s that say what is wrong (encrypted, damaged)."""
    import pypdfium2

    try:
        yield
    except pypdfium2.PdfiumError as exc:
        reason = str(exc)
        if "password" in reason.lower():
            raise UnprocessableInput("the PDF is encrypted (password-protected); send it decrypted") from None
        raise UnprocessableInput(f"could not read {what} of the PDF: {reason}") from None


def is_document(file: BinaryIO, limits: ImageLimits) -> str | None:
    """``pdf``, or ``tiff`` for a TIFF of more than one page: what is read page by page; None for
    anything else (single images, and what is not an image at all, refused by the image path)."""
    head = file.read(16)
    file.seek(0)
    kind = sniff_document(head)
    if kind != "tiff":
        return kind
    try:
        image, _ = open_checked(file, limits, None)
        frames = int(getattr(image, "n_frames", 1))
    except (PayloadTooLarge, UnprocessableInput):
        return None  # the image path says what is wrong with it
    finally:
        file.seek(0)
    return "tiff" if frames > 1 else None
