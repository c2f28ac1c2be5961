"""Text from an uploaded image or document: run the OCR model (page by page for PDFs and
multi-page TIFFs), shape its lines."""

from __future__ import annotations

from fastapi import UploadFile

from asr_ocr_model_server.api.ocr.protocol import LineOut, OcrResponse, PageOut
from asr_ocr_model_server.api.uploads import UploadServing
from asr_ocr_model_server.backends import AsrOcrModel, as_ocr
from asr_ocr_model_server.document_input import Document, DocumentLimits, is_document, parse_pages
from asr_ocr_model_server.image_input import check_image, decode_image, limits_from
from asr_ocr_model_server.ocr.lines import TextLine

PAGE_SEPARATOR = "\n\n"


def _lines(lines: list[TextLine]) -> list[LineOut]:
    return [LineOut(text=line.text, confidence=line.confidence, box=line.box) for line in lines]


async def read_upload(serving: UploadServing, image: UploadFile, model: str | None, pages: str | None = None,
                      dpi: int = 200) -> OcrResponse:
    limits = limits_from(serving.settings)
    kind = is_document(image.file, limits)
    if kind is None:
        def check(_: AsrOcrModel) -> None:
            check_image(image.file, limits, image.filename)
            parse_pages(pages, 1)  # a lone image is page 1

        name, lines = await serving.run(model, "ocr", check,
                                        lambda _, __: decode_image(image.file, limits, image.filename),
                                        lambda handle, img: as_ocr(handle).read(img))
        serving.count("images", "images (and document pages) read (OCR)", name)
        return OcrResponse(model=name, extracted_text="\n".join(line.text for line in lines), lines=_lines(lines))

    document_limits = DocumentLimits(max_pages=serving.settings.max_document_pages, dpi=dpi, image=limits)

    def check_document(_: AsrOcrModel) -> None:
        Document(image.file, kind, document_limits, pages).close()

    def read_pages(handle: AsrOcrModel, document: Document) -> list[tuple[int, list[TextLine]]]:
        # One page rendered at a time, inside the model's turn: memory holds one page.
        try:
            return [(page.number, as_ocr(handle).read(page.image)) for page in document.rendered()]
        finally:
            document.close()

    name, read = await serving.run(model, "ocr", check_document,
                                   lambda _, __: Document(image.file, kind, document_limits, pages), read_pages)
    serving.count("images", "images (and document pages) read (OCR)", name, len(read))
    page_out = [PageOut(page=number, extracted_text="\n".join(line.text for line in lines), lines=_lines(lines))
                for number, lines in read]
    return OcrResponse(model=name, extracted_text=PAGE_SEPARATOR.join(p.extracted_text for p in page_out),
                       lines=[line for p in page_out for line in p.lines], pages=page_out)
