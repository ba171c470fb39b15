"""``POST /api/documents``: the text of an uploaded .txt, .md, .pdf or .docx file (the CLI's ``--file``).

The body is the file's bytes as they are (no multipart: no extra dependency, and the browser sends
a ``File`` as it is); the file's name travels in the ``name`` query parameter, its media type in
``Content-Type`` (used when the name has no extension). The answer is
:meth:`attnscope.documents.Document.to_dict` — ``{"name", "kind", "text", "chars", "pages"}`` —
after the text passed the checks of every text (:func:`attnscope.capture.tokens.check_text`).
Nothing is kept: the page puts the text into its text box, and the analyses send it as any text.
A file over the request-body limit is refused before it is read (413 ``too_large``); an
unsupported, corrupt, encrypted or scanned file is 400 with a one-line ``detail``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool

from attnscope.capture.tokens import check_text
from attnscope.documents import MAX_DOCUMENT_BYTES, SUPPORTED, document_text
from attnscope.errors import TooLongError


def router() -> APIRouter:
    api = APIRouter(prefix="/api", tags=["documents"])

    @api.post(
        "/documents",
        summary=f"The text of a document ({SUPPORTED}); the body is the file, `name` its file name",
    )
    async def document_route(
        request: Request,
        name: Annotated[str, Query(min_length=1, max_length=255, description="the file's name, e.g. 报告.pdf")],
    ) -> dict[str, Any]:
        data = bytearray()
        async for chunk in request.stream():  # the body limit (guards.BodyLimit) counts these too
            data += chunk
            if len(data) > MAX_DOCUMENT_BYTES:
                raise TooLongError(f"{name} is over {MAX_DOCUMENT_BYTES:,} bytes; the limit is {MAX_DOCUMENT_BYTES:,}")

        def read() -> dict[str, Any]:  # parsing a PDF takes a while: off the event loop
            document = document_text(bytes(data), name, request.headers.get("content-type"))
            check_text(document.text, allow_blank=False)
            return document.to_dict()

        return await run_in_threadpool(read)

    return api
