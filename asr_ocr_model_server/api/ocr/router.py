"""Image-to-text route: ``POST /ocr`` (kept from the original servers)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, UploadFile

from asr_ocr_model_server.api.dependencies import UploadServingDep
from asr_ocr_model_server.api.ocr.protocol import OcrResponse
from asr_ocr_model_server.api.ocr.serving import read_upload
from asr_ocr_model_server.api.uploads import NON_EMPTY_FILE, UPLOAD_ERRORS, OptionalText


def ocr_router() -> APIRouter:
    router = APIRouter(tags=["ocr"])

    @router.post("/ocr", response_model=OcrResponse, responses=UPLOAD_ERRORS)
    async def ocr(
        serving: UploadServingDep,
        image: Annotated[UploadFile, File(description="PNG, JPEG, WebP, TIFF, BMP or GIF; or a PDF",
                                          json_schema_extra=NON_EMPTY_FILE)],
        model: Annotated[str | None, Form(description="default (or empty): the first OCR model"), OptionalText] = None,
        pages: Annotated[str | None, Form(description="pages of a PDF or TIFF to read, e.g. '1-3,7'; default all"),
                         OptionalText] = None,
        dpi: Annotated[int, Form(ge=50, le=600, description="resolution PDF pages are rendered at")] = 200,
    ) -> OcrResponse:
        """Read the text in an uploaded image, or in the pages of a PDF or multi-page TIFF (``pages``)."""
        return await read_upload(serving, image, model, pages, dpi)

    return router
