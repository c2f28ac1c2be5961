"""Image-to-text route: ``POST /ocr`` (kept from the original servers)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, UploadFile

from asr_ocr_model_server.backends import as_ocr
from asr_ocr_model_server.image_input import check_image, decode_image, limits_from
from asr_ocr_model_server.model_choice import UploadServingDep
from asr_ocr_model_server.routes_asr import ERRORS, NON_EMPTY_FILE, OptionalText
from asr_ocr_model_server.schemas import LineOut, OcrResponse


def ocr_router() -> APIRouter:
    router = APIRouter(tags=["ocr"])

    @router.post("/ocr", response_model=OcrResponse, responses=ERRORS)
    async def ocr(
        serving: UploadServingDep,
        image: Annotated[UploadFile, File(description="PNG, JPEG, WebP, TIFF, BMP or GIF",
                                          json_schema_extra=NON_EMPTY_FILE)],
        model: Annotated[str | None, Form(description="default (or empty): the first OCR model"), OptionalText] = None,
    ) -> OcrResponse:
        """Read the text in an uploaded image."""
        limits = limits_from(serving.settings)
        name, lines = await serving.run(
            model, "ocr", lambda _: check_image(image.file, limits, image.filename),
            lambda: decode_image(image.file, limits, image.filename),
            lambda handle, img: as_ocr(handle).read(img),
        )
        serving.count("images", "images read (OCR)", name)
        return OcrResponse(
            model=name,
            extracted_text="\n".join(line.text for line in lines),
            lines=[LineOut(text=line.text, confidence=line.confidence, box=line.box) for line in lines],
        )

    return router
