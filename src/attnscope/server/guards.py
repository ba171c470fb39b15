"""Two checks every request passes before any route runs (plain ASGI middleware).

- :class:`BodyLimit`: a body over the limit is refused with 413 ``too_large`` — at once when its
  ``Content-Length`` says so, and for chunked uploads as soon as the bytes received pass the limit
  (they are counted while they arrive; nothing more is read or buffered).
- :class:`HostCheck`: with a list of allowed names, a request whose ``Host`` header names anything
  else is refused with 400 ``bad_host``. ``attnscope serve`` on a loopback address allows only the
  loopback names, so a web page on another site cannot reach the server through a DNS name it
  re-points at 127.0.0.1 (DNS rebinding).
"""

from __future__ import annotations

from collections.abc import Iterable

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from attnscope.server.errors import error_response

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` once a body passes the limit; answered as 413 ``too_large``."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body over {limit:,} bytes")


class BodyLimit:
    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            await self.refuse(scope, receive, send)
            return
        received = 0
        started = over = False

        async def counted() -> Message:
            nonlocal received, over
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    over = True
                    raise BodyTooLarge(self.limit)
            return message

        async def watched(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                if over:  # the rest of the body is never read: the connection ends with this answer
                    message = {**message, "headers": [*message.get("headers", []), (b"connection", b"close")]}
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except BodyTooLarge:  # not answered inside the app (routes answer it through the error handlers)
            if started:
                raise
            await self.refuse(scope, receive, send)

    async def refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_response(413, f"request body over {self.limit:,} bytes", "too_large")
        response.headers["connection"] = "close"  # the rest of the body is never read
        await response(scope, receive, send)


def host_name(header: str) -> str:
    """The name of a ``Host`` header without its port, lower-case (``[::1]:8000`` → ``::1``)."""
    text = header.strip().lower()
    if text.startswith("["):
        return text[1 : text.find("]")] if "]" in text else text
    if text.count(":") == 1:
        return text.split(":", 1)[0]
    return text


class HostCheck:
    def __init__(self, app: ASGIApp, allowed: Iterable[str]) -> None:
        self.app = app
        self.allowed = {host_name(name) for name in allowed}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            header = dict(scope["headers"]).get(b"host", b"").decode("latin-1")
            if host_name(header) not in self.allowed:
                expected = ", ".join(sorted(self.allowed))
                response = error_response(
                    400, f"this server answers requests for {expected} only (the Host header names another)", "bad_host"
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
