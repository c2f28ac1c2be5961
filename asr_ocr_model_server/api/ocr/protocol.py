"""Response models of ``/ocr`` (the request is a multipart form, declared on the route)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class LineOut(BaseModel):
    text: str
    confidence: float | None = Field(description="0..1; null when the backend gives none")
    box: list[list[float]] | None = Field(description="four [x, y] corners; null when the backend gives none")


class OcrResponse(BaseModel):
    success: bool = True
    model: str
    extracted_text: str
    lines: list[LineOut]
