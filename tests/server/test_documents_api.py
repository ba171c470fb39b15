"""``POST /api/documents``: an uploaded file's text (the body is the file), the same as the library's;
bad files answered 4xx with one line, never 500."""

from __future__ import annotations

import pytest

from attnscope.documents import MAX_DOCUMENT_BYTES
from tests.document_files import (
    CHINESE,
    DOCX_TEXT,
    ENGLISH,
    docx_bytes,
    image_only_pdf,
    pdf_bytes,
    zip_bytes,
)

PDF_TYPE = "application/pdf"


def upload(client, data: bytes, name: str | None, media_type: str = "application/octet-stream"):
    params = {"name": name} if name is not None else {}
    return client.post("/api/documents", params=params, content=data, headers={"Content-Type": media_type})


def test_a_pdf_with_chinese_and_its_page_count(client):
    answer = upload(client, pdf_bytes([[ENGLISH], [CHINESE]]), "首都 报告.pdf", PDF_TYPE)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body == {
        "name": "首都 报告.pdf",
        "kind": "pdf",
        "text": f"{ENGLISH}\n\n{CHINESE}",
        "chars": len(ENGLISH) + 2 + len(CHINESE),
        "pages": 2,
    }


def test_docx_markdown_and_text(client):
    assert upload(client, docx_bytes(), "r.docx").json()["text"] == DOCX_TEXT
    markdown = f"# {CHINESE}\n\n*{ENGLISH}*\n"
    assert upload(client, markdown.encode(), "n.md", "text/markdown").json()["text"] == markdown[:-1]
    assert upload(client, "\ufeffhello\r\n".encode(), "h.txt", "text/plain").json()["text"] == "hello"
    assert upload(client, CHINESE.encode(), "upload", "text/plain").json()["kind"] == "text"


@pytest.mark.parametrize(
    ("data", "name", "status", "code", "words"),
    [
        (b"%PDF-1.4 " + bytes(range(256)), "c.pdf", 400, "bad_input", "c.pdf is not a readable PDF"),
        (pdf_bytes([[ENGLISH]], password="pw"), "e.pdf", 400, "bad_input", "password-protected"),
        (image_only_pdf(), "scan.pdf", 400, "bad_input", "no text layer"),
        (zip_bytes({"x.txt": b"x"}), "z.docx", 400, "bad_input", "not a Word document"),
        (b"caf\xe9", "l.txt", 400, "bad_input", "not valid UTF-8"),
        (b"x", "a.xlsx", 400, "bad_input", "it reads .txt, .md, .pdf, .docx"),
        (b"", "e.txt", 400, "bad_input", "e.txt is empty"),
        (b"a" * (MAX_DOCUMENT_BYTES + 1), "big.txt", 413, "too_large", "request body over 8,000,000 bytes"),
    ],
)
def test_bad_files_are_refused_with_one_line(client, data, name, status, code, words):
    answer = upload(client, data, name)
    assert answer.status_code == status, answer.text
    assert answer.json()["code"] == code and words in answer.json()["detail"]


def test_the_name_is_required(client):
    answer = upload(client, b"hello", None)
    assert answer.status_code == 422 and answer.json()["detail"].startswith("name")
