"""Response models of ``/ocr`` (the request is a multipart form, declared on the route)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class LineOut(BaseModel):
    text: str
    confidence: float | None = Field(description="0..1; null when the backend gives none")
    box: list[list[float]] | None = Field(description="four [x, y] corners; null when the backend gives none")


class PageOut(BaseModel):
    page: int = Field(description="page number, counted from 1")
    extracted_text: str
    lines: list[LineOut] = Field(description="boxes in the page's pixels at the requested dpi")


class OcrResponse(BaseModel):
    success: bool = True
    model: str
    extracted_text: str = Field(description="the text of every page read, pages separated by a blank line")
    lines: list[LineOut] = Field(description="every line, page after page")
    pages: list[PageOut] | None = Field(default=None, description="per page, for PDFs and multi-page TIFFs")
