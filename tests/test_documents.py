"""attnscope.documents: the text of .txt, .md, .pdf and .docx files made here, compared with what was
written into them; bad files refused in one line."""

from __future__ import annotations

import pytest

from attnscope.capture.tokens import MAX_TEXT_CHARS
from attnscope.documents import (
    MAX_DOCUMENT_BYTES,
    MAX_DOCUMENT_CHARS,
    MAX_PDF_PAGES,
    MAX_UNPACKED_BYTES,
    document_kind,
    document_text,
)
from attnscope.errors import InputError, TooLongError
from tests.document_files import (
    CHINESE,
    DOCX_TEXT,
    ENGLISH,
    docx_bytes,
    image_only_pdf,
    owner_only_pdf,
    pdf_bytes,
    zip_bytes,
)


def test_the_text_limit_is_every_texts_limit():
    assert MAX_DOCUMENT_CHARS == MAX_TEXT_CHARS


def test_plain_text_is_strict_utf8_without_its_bom_and_final_line_break():
    written = f"{ENGLISH}\r\n{CHINESE}\n\n  indented\n"
    document = document_text("\ufeff".encode() + written.encode(), "notes.txt")
    assert document.text == f"{ENGLISH}\n{CHINESE}\n\n  indented"
    assert (document.kind, document.pages) == ("text", None)
    assert document.to_dict()["chars"] == len(document.text)


def test_markdown_keeps_its_markup_as_written():
    written = f"# 标题\n\n**{CHINESE}** and a [link](https://example.org)\n\n- item\n"
    document = document_text(written.encode(), "README.MD")
    assert document.text == written[:-1]
    assert document.kind == "markdown"


def test_pdf_text_layer_with_chinese_page_by_page():
    document = document_text(pdf_bytes([[ENGLISH, CHINESE], ["Page two."]]), "中文.pdf")
    assert document.text == f"{ENGLISH}\n{CHINESE}\n\nPage two."
    assert (document.kind, document.pages, document.name) == ("pdf", 2, "中文.pdf")


def test_pdf_encrypted_against_editing_only_is_read():
    assert document_text(owner_only_pdf(CHINESE), "o.pdf").text == CHINESE


def test_docx_paragraphs_and_table_cells_in_order():
    document = document_text(docx_bytes(), "报告.docx")
    assert document.text == DOCX_TEXT
    assert document.kind == "docx"


def test_the_media_type_decides_when_the_name_has_no_extension():
    assert document_kind("upload", "application/pdf") == "pdf"
    assert document_kind(None, "text/markdown; charset=utf-8") == "markdown"
    assert document_text(CHINESE.encode(), None, "text/plain").text == CHINESE
    assert document_kind("a.docx", "text/plain") == "docx"  # the extension wins


BAD = {
    "corrupt pdf": (lambda: b"%PDF-1.7\n" + bytes(range(256)) * 4, "c.pdf", InputError, "not a readable PDF"),
    "encrypted pdf": (lambda: pdf_bytes([[ENGLISH]], password="secret"), "e.pdf", InputError, "password-protected"),
    "image-only pdf": (image_only_pdf, "scan.pdf", InputError, "no text layer"),
    "random zip as docx": (lambda: zip_bytes({"a.txt": b"hello"}), "z.docx", InputError, "not a Word document"),
    "not a zip": (lambda: b"PK\x03\x04 nothing", "n.docx", InputError, "not a .docx file"),
    "zip bomb": (
        lambda: zip_bytes({"word/document.xml": b"0" * (MAX_UNPACKED_BYTES + 1)}),
        "bomb.docx",
        TooLongError,
        "zip bomb",
    ),
    "too large": (lambda: b"a" * (MAX_DOCUMENT_BYTES + 1), "big.txt", TooLongError, "the limit is 8,000,000"),
    "too much text": (lambda: b"a" * (MAX_DOCUMENT_CHARS + 1), "long.md", TooLongError, "1,000,000 characters"),
    "unknown extension": (lambda: b"{\\rtf1}", "letter.rtf", InputError, ".txt, .md, .pdf, .docx"),
    "no extension, no type": (lambda: b"hello", "README", InputError, "without an extension"),
    "invalid utf-8": (lambda: "caf\u00e9".encode("latin-1"), "latin.txt", InputError, "not valid UTF-8 (byte 3"),
    "empty": (lambda: b"", "empty.txt", InputError, "empty.txt is empty"),
    "blank": (lambda: b" \n\n", "blank.md", InputError, "holds no text"),
}


@pytest.mark.parametrize("case", list(BAD), ids=list(BAD))
def test_bad_files_are_refused_in_one_line_naming_the_file(case):
    make, name, kind, words = BAD[case]
    with pytest.raises(kind) as refused:
        document_text(make(), name)
    message = str(refused.value)
    assert words in message and "\n" not in message and len(message) < 200
    assert name in message or case in ("unknown extension", "no extension, no type")


def test_a_pdf_over_the_page_limit_is_refused(monkeypatch):
    import attnscope.documents as documents

    monkeypatch.setattr(documents, "MAX_PDF_PAGES", 2)
    with pytest.raises(TooLongError, match="has 3 pages; the limit is 2"):
        document_text(pdf_bytes([["one"], ["two"], ["three"]]), "long.pdf")
    assert MAX_PDF_PAGES == 1000
