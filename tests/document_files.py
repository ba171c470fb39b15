"""Documents made in the tests, with the text each was written with: PDFs by ReportLab (Chinese in the
built-in CID font STSong-Light, as attnscope.render.document writes it), Word files by python-docx."""

from __future__ import annotations

import io
import zipfile

ENGLISH = "The capital of France is"
CHINESE = "我爱中国，他的首都在于"


def pdf_bytes(pages: list[list[str]], *, password: str | None = None) -> bytes:
    """A PDF whose page i holds the lines ``pages[i]`` (Latin lines in Helvetica, others in STSong-Light)."""
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.pdfgen import canvas

    pdfmetrics.registerFont(UnicodeCIDFont("STSong-Light"))
    buffer = io.BytesIO()
    drawing = canvas.Canvas(buffer, encrypt=password, invariant=1)
    for lines in pages:
        for row, line in enumerate(lines):
            drawing.setFont("Helvetica" if line.isascii() else "STSong-Light", 12)
            drawing.drawString(72, 720 - 20 * row, line)
        drawing.showPage()
    drawing.save()
    return buffer.getvalue()


def image_only_pdf() -> bytes:
    """A 'scanned' page: a picture of text (a grey image with a dark band), no text layer."""
    from PIL import Image
    from reportlab.pdfgen import canvas

    picture = Image.new("RGB", (200, 40), (230, 230, 230))
    picture.paste((20, 20, 20), (10, 15, 190, 25))
    buffer = io.BytesIO()
    drawing = canvas.Canvas(buffer)
    drawing.drawInlineImage(picture, 72, 600, width=400, height=80)
    drawing.showPage()
    drawing.save()
    return buffer.getvalue()


def owner_only_pdf(text: str) -> bytes:
    """A PDF encrypted against editing only (empty open password): anyone may read it."""
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf_bytes([[text]]))))
    writer.encrypt(user_password="", owner_password="owner-secret", algorithm="AES-128")
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


DOCX_TEXT = f"Report\n{CHINESE}\n{ENGLISH}\ncity\t城市\nParis\t巴黎\nThe end."


def docx_bytes() -> bytes:
    """A Word document: a heading, a Chinese and an English paragraph, a 2 × 2 table, a last paragraph
    (its text, as attnscope reads it, is DOCX_TEXT)."""
    import docx

    document = docx.Document()
    document.add_heading("Report", level=1)
    document.add_paragraph(CHINESE)
    document.add_paragraph(ENGLISH)
    table = document.add_table(rows=2, cols=2)
    for row, (left, right) in enumerate([("city", "城市"), ("Paris", "巴黎")]):
        table.cell(row, 0).text = left
        table.cell(row, 1).text = right
    document.add_paragraph("The end.")
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def zip_bytes(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()
