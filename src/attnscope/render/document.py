"""A document as a list of blocks, written as one self-contained HTML page or as a PDF.

The audit report (and any later document) is built once as blocks — headings, paragraphs, tables,
figures (PNG bytes made with matplotlib) — and :func:`document_html` and :func:`document_pdf` write
the same content: the HTML inline (CSS in the page, figures as ``data:`` URIs, the data embedded as
JSON), the PDF with ReportLab's page layout (text as text, so a reader can search and copy it).

Chinese in the PDF: ReportLab's built-in CID font ``STSong-Light`` (Adobe-GB1; no font file is
embedded — readers and poppler substitute an installed Chinese font) for each run of CJK characters;
Helvetica for the rest. Figures carry their own text (matplotlib, with a CJK
font from the machine when one is installed: :func:`figure_font`).
"""

from __future__ import annotations

import base64
import html
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CJK_RUN = re.compile(r"[\u2e80-\u9fff\uf900-\ufaff\uff00-\uffef\u3000-\u303f]+")
CJK_FONT = "STSong-Light"


@dataclass
class Heading:
    text: str
    level: int = 2


@dataclass
class Paragraph:
    text: str
    note: bool = False  # a smaller, muted line (a caption, a method's statement)
    testid: str | None = None


@dataclass
class Table:
    header: list[str]
    rows: list[list[Any]]  # strings, numbers (written in the house format) or None
    testid: str | None = None
    row_classes: list[str] = field(default_factory=list)  # per row: "" or e.g. "failed", "critical"


@dataclass
class Figure:
    png: bytes
    caption: str
    testid: str | None = None


Block = Heading | Paragraph | Table | Figure

STYLE = """
body{font-family:system-ui,"Noto Sans CJK SC","Noto Sans",sans-serif;margin:2rem;max-width:1100px;color:#1a1a1a}
h1{font-size:1.4rem} h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #ddd} h3{font-size:1rem}
table{border-collapse:collapse;margin:.5rem 0} td,th{border:1px solid #ddd;padding:2px 6px;font-size:.85rem}
th{background:#f4f4f4;text-align:left} td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.failed td{background:#fdecea} tr.critical td:first-child{border-left:4px solid #b3261e}
tr.warning td:first-child{border-left:4px solid #c77700} tr.passed td:first-child{border-left:4px solid #2e7d32}
.note{color:#5f6368;font-size:.85rem} figure{margin:1rem 0} figure img{max-width:100%}
figcaption{color:#5f6368;font-size:.85rem}
"""


def _cell(value: Any) -> tuple[str, bool]:
    """A cell's text and whether it is a number."""
    from attnscope.render.palette import fmt

    if value is None:
        return "—", False
    if isinstance(value, bool):
        return ("yes" if value else "no"), False
    if isinstance(value, int | float):
        return fmt(float(value)), True
    return str(value), False


def document_html(title: str, blocks: list[Block], data: dict[str, Any] | None = None) -> str:
    """One self-contained page: no network, figures inline, ``data`` embedded as JSON
    (``<script id="document-data">``)."""
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    for block in blocks:
        named = getattr(block, "testid", None)
        testid = f" data-testid='{html.escape(str(named))}'" if named else ""
        if isinstance(block, Heading):
            parts.append(f"<h{block.level}>{html.escape(block.text)}</h{block.level}>")
        elif isinstance(block, Paragraph):
            cls = " class='note'" if block.note else ""
            parts.append(f"<p{cls}{testid}>{html.escape(block.text)}</p>")
        elif isinstance(block, Table):
            head = "".join(f"<th>{html.escape(h)}</th>" for h in block.header)
            rows = []
            for index, row in enumerate(block.rows):
                cls = block.row_classes[index] if index < len(block.row_classes) else ""
                cells = []
                for value in row:
                    text, number = _cell(value)
                    exact = f" data-value='{float(value)!r}'" if number else ""
                    cells.append(f"<td{' class=num' if number else ''}{exact}>{html.escape(text)}</td>")
                rows.append(f"<tr class='{html.escape(cls)}'>{''.join(cells)}</tr>")
            parts.append(f"<table{testid}><tr>{head}</tr>{''.join(rows)}</table>")
        elif isinstance(block, Figure):
            source = "data:image/png;base64," + base64.b64encode(block.png).decode()
            parts.append(
                f"<figure{testid}><img alt='{html.escape(block.caption)}' src='{source}'>"
                f"<figcaption>{html.escape(block.caption)}</figcaption></figure>"
            )
    if data is not None:
        payload = json.dumps(data, ensure_ascii=False).replace("</", "<\\/")
        parts.append(f"<script type='application/json' id='document-data'>{payload}</script>")
    parts.append("</body></html>")
    return "".join(parts)


def document_pdf(title: str, blocks: list[Block], path: Path) -> None:
    """The same document as a PDF (A4) at ``path``, written whole or not at all."""
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
    from reportlab.lib.units import mm
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.platypus import Image, SimpleDocTemplate, Spacer
    from reportlab.platypus import Paragraph as Text
    from reportlab.platypus import Table as Grid

    if CJK_FONT not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(UnicodeCIDFont(CJK_FONT))
    sheet = getSampleStyleSheet()

    def para(text: str, name: str = "BodyText", **extra: Any) -> Text:
        marked = CJK_RUN.sub(lambda run: f'<font name="{CJK_FONT}">{run.group(0)}</font>', html.escape(text))
        style = ParagraphStyle(f"{name}-cjk", parent=sheet[name], wordWrap="CJK", **extra)
        return Text(marked.replace("\n", "<br/>"), style)

    width = A4[0] - 36 * mm
    story: list[Any] = [para(title, "Title")]
    heading: Any = None  # a heading waits for what follows it: the two stay on one page
    for block in blocks:
        if heading is not None and not isinstance(block, Heading):
            story.append(heading)
            heading = None
        if isinstance(block, Heading):
            if heading is not None:
                story.append(heading)
            heading = para(block.text, "Heading2" if block.level <= 2 else "Heading3")
            heading.keepWithNext = True
        elif isinstance(block, Paragraph):
            muted: dict[str, Any] = {"fontSize": 8, "textColor": colors.HexColor("#5f6368")} if block.note else {}
            story.append(para(block.text, **muted))
        elif isinstance(block, Table):
            small: dict[str, Any] = {"fontSize": 7, "leading": 8.5}
            grid = [[para(h, **small) for h in block.header]]
            grid += [[para(_cell(value)[0], **small) for value in row] for row in block.rows]
            table = Grid(grid, repeatRows=1, colWidths=[width / max(1, len(block.header))] * len(block.header))
            commands: list[Any] = [
                ("GRID", (0, 0), (-1, -1), 0.25, colors.HexColor("#cccccc")),
                ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#f4f4f4")),
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
            ]
            for index, cls in enumerate(block.row_classes):
                if "failed" in cls:
                    commands.append(("BACKGROUND", (0, index + 1), (-1, index + 1), colors.HexColor("#fdecea")))
            table.setStyle(commands)
            story += [table, Spacer(1, 4 * mm)]
        elif isinstance(block, Figure):
            image = Image(io.BytesIO(block.png))
            dpi = _png_dpi(block.png)  # drawn at the figure's own size (pixels at its dpi), at most the page's width
            scale = min(72.0 / dpi, width / image.drawWidth)
            image.drawWidth, image.drawHeight = image.drawWidth * scale, image.drawHeight * scale
            story += [image, para(block.caption, fontSize=8, textColor=colors.HexColor("#5f6368"))]
    if heading is not None:
        story.append(heading)
    partial = path.with_name(f".{path.name}.partial")
    try:
        SimpleDocTemplate(str(partial), pagesize=A4, title=title, leftMargin=18 * mm, rightMargin=18 * mm).build(story)
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)


def _png_dpi(png: bytes) -> float:
    """The resolution a PNG says it has (matplotlib writes it); 72 when it says none."""
    from PIL import Image as Picture

    with Picture.open(io.BytesIO(png)) as picture:
        return float(picture.info.get("dpi", (72.0, 72.0))[0]) or 72.0


def figure_font() -> list[str]:
    """matplotlib font families in fallback order: its default, then a CJK font when the machine has
    one (Chinese token labels would be empty boxes otherwise)."""
    from matplotlib import font_manager

    names = {font.name for font in font_manager.fontManager.ttflist}
    cjk = [name for name in ("Noto Sans CJK SC", "Noto Serif CJK SC", "WenQuanYi Zen Hei") if name in names]
    return ["DejaVu Sans", *cjk]
