"""One error shape for every refusal: ``{"detail": "<one line>", "code": "<machine-readable>"}``.

- library errors (:class:`attnscope.errors.AttnscopeError`) keep their own ``status`` and ``code``
  (400 bad_input, out_of_range, too_long, unsupported, ...; 404 not_found, model_not_found; 409
  cancelled; 502 scorer_failed);
- a request that does not match its route's model: 422 ``invalid_request``, naming the field and
  the rule, never echoing the value (a NaN or a lone surrogate could not be encoded back); a body
  that is not JSON, or not UTF-8, is such a request too;
- unknown routes 404 ``not_found``, wrong methods 405 ``method_not_allowed``, bodies over the size
  limit 413 ``too_large``, missing or wrong API keys 401 ``unauthorized``, a ``Host`` header a
  loopback server does not answer for 400 ``bad_host`` (:mod:`.guards`);
- anything else is a bug: 500 ``internal`` with no stack trace sent (the server log has it).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from attnscope.errors import AttnscopeError

log = logging.getLogger("attnscope.server")

MAX_DETAIL_CHARS = 500
_HTTP_CODES = {400: "bad_request", 401: "unauthorized", 404: "not_found", 405: "method_not_allowed", 413: "too_large"}


def one_line(message: str) -> str:
    """``message`` on one line, encodable as UTF-8 (lone surrogates replaced), at most 500 characters."""
    text = " ".join(str(message).split())
    text = text.encode("utf-8", "replace").decode("utf-8")
    return text if len(text) <= MAX_DETAIL_CHARS else text[: MAX_DETAIL_CHARS - 1] + "…"


def error_response(status: int, detail: str, code: str) -> JSONResponse:
    return JSONResponse({"detail": one_line(detail), "code": code}, status_code=status)


def validation_detail(errors: list[dict[str, Any]]) -> str:
    """The first validation error as ``field: rule`` (without the rejected value)."""
    if not errors:
        return "invalid request"
    first = errors[0]
    where = ".".join(str(part) for part in first.get("loc", ()) if part not in ("body", "query", "path"))
    message = str(first.get("msg", "invalid value")).removeprefix("Value error, ")
    if first.get("type") == "json_invalid":
        return "the body is not valid JSON" + (f" ({first['ctx'].get('error')})" if first.get("ctx") else "")
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    if not where or message.lower().startswith(f"{where.lower()} "):  # "text is empty", not "text: text is empty"
        return f"{message}{more}"
    return f"{where}: {message}{more}"


def add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(AttnscopeError)
    async def library_error(_: Request, error: AttnscopeError) -> JSONResponse:
        return error_response(error.status, str(error), error.code)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, error: RequestValidationError) -> JSONResponse:
        return error_response(422, validation_detail(list(error.errors())), "invalid_request")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, error: StarletteHTTPException) -> JSONResponse:
        cause = error.__cause__
        if error.status_code == 400 and isinstance(cause, UnicodeDecodeError):  # FastAPI's "error parsing the body"
            detail = f"the body is not valid JSON: not UTF-8 (byte {cause.start}: {cause.reason})"
            return error_response(422, detail, "invalid_request")
        code = _HTTP_CODES.get(error.status_code, "http_error")
        response = error_response(error.status_code, str(error.detail), code)
        for name, value in (error.headers or {}).items():
            response.headers[name] = value
        return response

    @app.exception_handler(Exception)
    async def unexpected_error(_: Request, error: Exception) -> JSONResponse:
        log.error("unexpected error\n%s", _masked_trace(error))
        return error_response(500, "internal error; the server log has the details", "internal")


def _masked_trace(error: BaseException) -> str:
    """The error's traceback with personal data masked: a log is data leaving the process (an
    exception message or a local quoted in it may hold the text of a request)."""
    import traceback

    from attnscope.governance.pii import find_pii
    from attnscope.governance.privacy import mask_text

    trace = "".join(traceback.format_exception(error))
    return mask_text(trace, find_pii(trace))


class MaskedErrors:
    """The outermost middleware of the app: an exception no handler answered becomes the 500 answer
    here, logged once with personal data masked. Left to Starlette's own error middleware, it would
    be answered and then raised again for the server to log — raw (uvicorn's "Exception in ASGI
    application"), with whatever text of the request the traceback quotes."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watched)
        except Exception as error:
            log.error("unexpected error\n%s", _masked_trace(error))
            if not started:  # else an answer (a stream) has begun: it ends here, nothing more can be said
                await error_response(500, "internal error; the server log has the details", "internal")(
                    scope, receive, send
                )
