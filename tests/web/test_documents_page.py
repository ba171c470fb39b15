"""Documents in real Chromium: a file chosen with "Open a document…" or dropped onto the text box fills
it with the text POST /api/documents gives (the library's attnscope.documents), and the line beside
the button says the name and the character count; a refused file leaves the text as it was."""

from __future__ import annotations

import base64

import numpy as np

from tests.document_files import CHINESE, DOCX_TEXT, ENGLISH, docx_bytes, image_only_pdf, pdf_bytes
from tests.web.conftest import screenshot
from tests.web.test_browser import analyze, api, counter, shown_weights


def choose(page, name: str, data: bytes, mime: str) -> None:
    before = counter(page, "documents")
    page.get_by_test_id("document-file").set_input_files({"name": name, "mimeType": mime, "buffer": data})
    page.wait_for_function(f"Number(document.body.dataset.documents || 0) > {before}")


def drop(page, name: str, data: bytes, mime: str) -> None:
    before = counter(page, "documents")
    transfer = page.evaluate_handle(
        """([name, encoded, mime]) => {
          const bytes = Uint8Array.from(atob(encoded), (c) => c.charCodeAt(0));
          const transfer = new DataTransfer();
          transfer.items.add(new File([bytes], name, { type: mime }));
          return transfer;
        }""",
        [name, base64.b64encode(data).decode(), mime],
    )
    page.get_by_test_id("prompt-input").dispatch_event("dragover", {"dataTransfer": transfer})
    page.get_by_test_id("prompt-input").dispatch_event("drop", {"dataTransfer": transfer})
    page.wait_for_function(f"Number(document.body.dataset.documents || 0) > {before}")


def test_upload_and_drop_fill_the_prompt_with_the_documents_text(page, server):
    expected = f"{ENGLISH}\n{CHINESE}\n\nPage two."
    choose(page, "首都.pdf", pdf_bytes([[ENGLISH, CHINESE], ["Page two."]]), "application/pdf")
    assert page.get_by_test_id("prompt-input").input_value() == expected
    status = page.get_by_test_id("document-status")
    assert status.get_attribute("data-chars") == str(len(expected)) and status.get_attribute("data-name") == "首都.pdf"
    assert status.inner_text() == f"首都.pdf: {len(expected)} characters from 2 pages"
    screenshot(page, "documents-upload")

    drop(page, "报告.docx", docx_bytes(), "application/vnd.openxmlformats-officedocument.wordprocessingml.document")
    assert page.get_by_test_id("prompt-input").input_value() == DOCX_TEXT
    assert status.get_attribute("data-chars") == str(len(DOCX_TEXT))

    # in Chinese the line is Chinese
    page.get_by_test_id("language-select").select_option("zh-CN")
    page.wait_for_function("document.getElementById('upload-document').textContent === '打开文档…'")
    assert status.inner_text() == f"报告.docx：{len(DOCX_TEXT)} 个字符"
    page.get_by_test_id("language-select").select_option("en")

    # the uploaded text is what the model reads: the analysis is the API's for the same text
    analyze(page, page.get_by_test_id("prompt-input").input_value())
    expected_analysis = api(server, text=DOCX_TEXT)
    np.testing.assert_allclose(shown_weights(page), expected_analysis["attention"]["weights"], atol=1e-12)
    assert status.is_hidden()  # typed over: the line no longer describes the text


def test_a_refused_file_leaves_the_prompt_and_says_why(page, server):
    page.get_by_test_id("prompt-input").fill(CHINESE)
    choose(page, "scan.pdf", image_only_pdf(), "application/pdf")
    assert page.get_by_test_id("prompt-input").input_value() == CHINESE
    error = page.get_by_test_id("error")
    assert error.is_visible() and "scan.pdf has no text layer" in error.inner_text()
    assert page.get_by_test_id("document-status").is_hidden()

    choose(page, "sheet.xlsx", b"PK\x03\x04", "application/octet-stream")
    assert "it reads .txt, .md, .pdf, .docx" in error.inner_text() and "sheet.xlsx" in error.inner_text()
    assert page.get_by_test_id("prompt-input").input_value() == CHINESE

    choose(page, "notes.md", f"# {CHINESE}\n".encode(), "text/markdown")  # the page keeps working
    assert page.get_by_test_id("prompt-input").input_value() == f"# {CHINESE}"
    assert error.is_hidden()
