"""Documents as input: the text of a ``.txt``, ``.md``, ``.pdf`` or ``.docx`` file, or a clear one-line refusal.

:func:`document_text` turns the bytes of a file and its name (or media type) into the text the model
reads. It is pure (no files, no network, no model), so the CLI's ``--file`` and the server's
``POST /api/documents`` give the same text for the same file.

- ``.txt`` and ``.md``: decoded as UTF-8, strictly (invalid bytes are refused, a byte-order mark is
  dropped). Markdown is kept as written, markup included: that is the text the model reads.
- ``.pdf``: the text layer, page by page (pages joined by a blank line). A password-protected PDF,
  one without a text layer (a scan: there is no OCR) and one over :data:`MAX_PDF_PAGES` pages are
  refused. A PDF encrypted only against editing (an empty open password) is read.
- ``.docx``: the body's paragraphs and tables in document order, one paragraph a line, a table's
  cells separated by tabs and its rows by line breaks. A zip that is not a Word document, and one whose
  entries unpack to over :data:`MAX_UNPACKED_BYTES` (a zip bomb), are refused.

For every kind, line breaks become ``\\n`` (as a browser's text box gives them) and one final line
break is dropped (as ``-`` on the command line drops it: editors add it, it is not part of the text).
Files are limited to :data:`MAX_DOCUMENT_BYTES` and texts to :data:`MAX_DOCUMENT_CHARS` characters,
the limit of every text attnscope reads (``attnscope.capture.tokens.MAX_TEXT_CHARS``; a test keeps
them equal: this module sits below ``capture`` and cannot import it).
"""

from __future__ import annotations

import io
import re
import zipfile
from dataclasses import dataclass
from typing import Any

from attnscope.errors import InputError, TooLongError

MAX_DOCUMENT_BYTES = 8_000_000  # the server's request-body limit: one upload is one body
MAX_DOCUMENT_CHARS = 1_000_000  # = attnscope.capture.tokens.MAX_TEXT_CHARS
MAX_PDF_PAGES = 1000
MAX_UNPACKED_BYTES = 64_000_000  # a .docx's zip entries together, once unpacked

KINDS = {".txt": "text", ".md": "markdown", ".markdown": "markdown", ".pdf": "pdf", ".docx": "docx"}
MEDIA_TYPES = {
    "text/plain": "text",
    "text/markdown": "markdown",
    "text/x-markdown": "markdown",
    "application/pdf": "pdf",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
}
SUPPORTED = ".txt, .md, .pdf, .docx"


@dataclass(frozen=True)
class Document:
    """A file's text and what it was: ``kind`` is text, markdown, pdf or docx; ``pages`` for a PDF."""

    name: str
    kind: str
    text: str
    pages: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "text": self.text, "chars": len(self.text), "pages": self.pages}


def document_kind(name: str | None, media_type: str | None = None) -> str:
    """``text``, ``markdown``, ``pdf`` or ``docx`` from the file name's extension, else from the media type."""
    suffix = re.search(r"\.[A-Za-z0-9]+$", name or "")
    if suffix and suffix.group().lower() in KINDS:
        return KINDS[suffix.group().lower()]
    media = (media_type or "").split(";")[0].strip().lower()
    if media in MEDIA_TYPES and not suffix:
        return MEDIA_TYPES[media]
    what = (
        f"{suffix.group()!r} files" if suffix else f"files of type {media!r}" if media else "files without an extension"
    )
    raise InputError(f"attnscope cannot read {what}; it reads {SUPPORTED}")


def document_text(data: bytes, name: str | None = None, media_type: str | None = None) -> Document:
    """The text of the file ``data`` named ``name`` (its extension decides; else ``media_type``).

    Raises :class:`InputError` (one line, naming the file) for an unsupported, corrupt, encrypted,
    scanned or empty file, and :class:`TooLongError` for one over the size, page or text limits."""
    label = name or "the document"
    kind = document_kind(name, media_type)
    if len(data) > MAX_DOCUMENT_BYTES:
        raise TooLongError(f"{label} is {len(data):,} bytes; the limit is {MAX_DOCUMENT_BYTES:,}")
    if not data:
        raise InputError(f"{label} is empty")
    pages = None
    if kind in ("text", "markdown"):
        text = _plain(data, label)
    elif kind == "pdf":
        text, pages = _pdf(data, label)
    else:
        text = _docx(data, label)
    text = _lines(text)
    if not text.strip():
        raise InputError(f"{label} holds no text")
    _check_length(len(text), label)
    return Document(label, kind, text, pages)


def _lines(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text[:-1] if text.endswith("\n") else text


def _check_length(chars: int, label: str) -> None:
    if chars > MAX_DOCUMENT_CHARS:
        raise TooLongError(
            f"{label} holds over {MAX_DOCUMENT_CHARS:,} characters of text; the limit is {MAX_DOCUMENT_CHARS:,}"
        )


def _plain(data: bytes, label: str) -> str:
    try:
        return data.decode("utf-8-sig")  # strict; a byte-order mark dropped
    except UnicodeDecodeError as error:
        raise InputError(f"{label} is not valid UTF-8 (byte {error.start}: {error.reason}); save it as UTF-8") from None


def _pdf(data: bytes, label: str) -> tuple[str, int]:
    """The text layer of every page, pages joined by a blank line, and the page count."""
    import logging

    from pypdf import PdfReader
    from pypdf.errors import DependencyError

    logger = logging.getLogger("pypdf")
    level = logger.level
    logger.setLevel(logging.ERROR)  # pypdf's warnings while it repairs a damaged file are not the user's business
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            try:
                opened = reader.decrypt("")  # encrypted against editing only: readable by anyone
            except (DependencyError, NotImplementedError) as error:
                raise InputError(f"{label} is encrypted in a way attnscope cannot open ({error})") from None
            if not opened:
                raise InputError(f"{label} is password-protected; remove the password and try again")
        count = len(reader.pages)
        if count > MAX_PDF_PAGES:
            raise TooLongError(f"{label} has {count:,} pages; the limit is {MAX_PDF_PAGES:,}")
        texts: list[str] = []
        total = 0
        for page in reader.pages:
            texts.append(page.extract_text() or "")
            total += len(texts[-1])
            _check_length(total, label)  # stops reading: the text is refused anyway
    except (InputError, TooLongError):
        raise
    except Exception as error:  # pypdf raises many kinds (PdfReadError, ValueError, ...) on a damaged file
        raise InputError(f"{label} is not a readable PDF ({_reason(error)})") from None
    finally:
        logger.setLevel(level)
    if not any(text.strip() for text in texts):
        raise InputError(f"{label} has no text layer (a scanned PDF?); attnscope does not read images (no OCR)")
    return "\n\n".join(text.strip("\n") for text in texts), count


def _docx(data: bytes, label: str) -> str:
    """A Word document's paragraphs and tables in body order: one paragraph a line, cells by tabs."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        entries = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as error:
        raise InputError(f"{label} is not a .docx file (not a zip archive: {_reason(error)})") from None
    unpacked = sum(entry.file_size for entry in entries)
    if unpacked > MAX_UNPACKED_BYTES:
        raise TooLongError(f"{label} unpacks to {unpacked:,} bytes; the limit is {MAX_UNPACKED_BYTES:,} (a zip bomb?)")
    if "word/document.xml" not in {entry.filename for entry in entries}:
        raise InputError(f"{label} is a zip archive but not a Word document (no word/document.xml)")
    from docx import Document as open_docx
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    try:
        document = open_docx(io.BytesIO(data))
        lines: list[str] = []
        total = 0
        for block in document.iter_inner_content():
            found = (
                [block.text] if isinstance(block, Paragraph) else _table_rows(block) if isinstance(block, Table) else []
            )
            lines.extend(found)
            total += sum(len(line) + 1 for line in found)
            _check_length(total - 1, label)  # stops reading: the text is refused anyway
    except (InputError, TooLongError):
        raise
    except Exception as error:  # python-docx and lxml raise many kinds on a damaged document
        raise InputError(f"{label} is not a readable Word document ({_reason(error)})") from None
    return "\n".join(lines)


def _table_rows(table: Any) -> list[str]:
    """Each row's cells joined by tabs (a merged cell once)."""
    rows = []
    for row in table.rows:
        cells: list[Any] = []
        for cell in row.cells:
            if not cells or cell._tc is not cells[-1]._tc:
                cells.append(cell)
        rows.append("\t".join(cell.text for cell in cells))
    return rows


def _reason(error: Exception) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= 120 else text[:119] + "…"
