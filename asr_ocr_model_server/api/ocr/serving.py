"""Text from an uploaded image: run the OCR model, shape its lines."""

from __future__ import annotations

from fastapi import UploadFile

from asr_ocr_model_server.api.ocr.protocol import LineOut, OcrResponse
from asr_ocr_model_server.api.uploads import UploadServing
from asr_ocr_model_server.backends import as_ocr
from asr_ocr_model_server.image_input import check_image, decode_image, limits_from


async def read_upload(serving: UploadServing, image: UploadFile, model: str | None) -> OcrResponse:
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
