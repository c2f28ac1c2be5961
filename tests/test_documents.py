"""PDFs and multi-page TIFFs on /ocr: per-page text from the embedded RapidOCR, page selection, limits,
and documents that cannot be read (encrypted, damaged, too many pages) refused with the reason."""

from __future__ import annotations

import io
from pathlib import Path

import pypdf
import pytest
from PIL import Image

from conftest import assert_error
from media import char_error_rate, render_text_image

pytestmark = pytest.mark.slow

PAGE_TEXT = ["Page one says hello", "The second page reads invoice 4021", "Third page: total 318 euros"]


def page_images(tmp_path: Path) -> list[Image.Image]:
    return [Image.open(render_text_image([text], tmp_path / f"p{i}.png")).convert("RGB")
            for i, text in enumerate(PAGE_TEXT)]


def pdf_of(images: list[Image.Image]) -> bytes:
    out = io.BytesIO()
    images[0].save(out, "PDF", save_all=True, append_images=images[1:], resolution=150)
    return out.getvalue()


def many_page_pdf(pages: int) -> bytes:
    """A valid PDF of ``pages`` empty pages, written directly (small and quick at any page count)."""
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>",
               b"<< /Type /Pages /Count %d /Kids [%s] >>" % (pages, b" ".join(b"%d 0 R" % (3 + i)
                                                                               for i in range(pages)))]
    objects += [b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] >>"] * pages
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


@pytest.fixture(scope="module")
def server(module_server):
    srv = module_server("asr_ocr_model_server", env={"ASR_OCR_MAX_DOCUMENT_PAGES": "50"})
    srv.wait_settled(timeout=180)
    return srv


def ocr(server, data: bytes, name: str = "doc.pdf", **form: str):
    return server.client.post("/ocr", files={"image": (name, data)}, data=form, timeout=300)


def test_a_pdf_is_read_page_by_page(server, tmp_path) -> None:
    r = ocr(server, pdf_of(page_images(tmp_path)))
    assert r.status_code == 200, r.text
    body = r.json()
    assert [p["page"] for p in body["pages"]] == [1, 2, 3]
    for page, text in zip(body["pages"], PAGE_TEXT, strict=True):
        assert char_error_rate(text, page["extracted_text"]) < 0.1, page
    assert body["extracted_text"] == "\n\n".join(p["extracted_text"] for p in body["pages"])
    assert len(body["lines"]) == sum(len(p["lines"]) for p in body["pages"])


def test_pages_selects_and_dpi_scales_the_boxes(server, tmp_path) -> None:
    data = pdf_of(page_images(tmp_path))
    body = ocr(server, data, pages="3,1").json()
    assert [p["page"] for p in body["pages"]] == [1, 3]
    assert char_error_rate(PAGE_TEXT[2], body["pages"][1]["extracted_text"]) < 0.1
    low, high = (ocr(server, data, pages="2", dpi=str(dpi)).json()["pages"][0]["lines"][0]["box"] for dpi in (100, 200))
    assert high[2][0] > 1.6 * low[2][0]  # boxes are in the page's pixels at the asked dpi


def test_a_multi_page_tiff_is_read_like_a_pdf(server, tmp_path) -> None:
    images = page_images(tmp_path)
    out = io.BytesIO()
    images[0].save(out, "TIFF", save_all=True, append_images=images[1:])
    body = ocr(server, out.getvalue(), "scan.tiff", pages="2-3").json()
    assert [p["page"] for p in body["pages"]] == [2, 3]
    assert char_error_rate(PAGE_TEXT[1], body["pages"][0]["extracted_text"]) < 0.1


def test_an_encrypted_pdf_is_422_saying_so(server, tmp_path) -> None:
    reader = pypdf.PdfReader(io.BytesIO(pdf_of(page_images(tmp_path)[:1])))
    writer = pypdf.PdfWriter()
    for page in reader.pages:
        writer.add_page(page)
    writer.encrypt("secret", algorithm="RC4-128")
    out = io.BytesIO()
    writer.write(out)
    assert "encrypted" in assert_error(ocr(server, out.getvalue()), 422)


def test_too_many_pages_is_413_before_rendering(server) -> None:
    huge = many_page_pdf(10_000)
    message = assert_error(ocr(server, huge), 413)
    assert "10000 pages" in message and "limit of 50" in message
    # A selection within the limit is read (the empty pages give no text).
    r = ocr(server, huge, pages="9999-10000")
    assert r.status_code == 200 and [p["page"] for p in r.json()["pages"]] == [9999, 10000]


@pytest.mark.parametrize(("pages", "says"), [("0", "counted from 1"), ("2-1", "counted from 1"),
                                              ("4", "beyond the document's 3 pages"), ("one", "not a page selection")])
def test_a_bad_page_selection_is_400(server, tmp_path, pages, says) -> None:
    assert says in assert_error(ocr(server, pdf_of(page_images(tmp_path)), pages=pages), 400)


def test_a_single_image_has_only_page_one(server, tmp_path) -> None:
    png = render_text_image(["Hello"], tmp_path / "one.png").read_bytes()
    r = ocr(server, png, "one.png")
    assert r.status_code == 200 and r.json()["pages"] is None
    assert "beyond" in assert_error(ocr(server, png, "one.png", pages="2"), 400)
    assert server.client.get("/health").status_code == 200
