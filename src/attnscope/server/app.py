"""The FastAPI application: the JSON API, binary attention arrays, OpenAI-compatible endpoints, the front end.

Every route is a plain function (FastAPI runs it in its thread pool); forward passes are
serialised per model by ``capture``. Requests are validated by one Pydantic model per route
(:mod:`.schemas`); every refusal has the shape ``{"detail", "code"}`` (:mod:`.errors`). The API
documentation at ``/docs`` works offline: its assets are served from the installed package.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles

from attnscope.server.errors import add_error_handlers, error_response
from attnscope.server.host import ModelHost
from attnscope.version import __version__

# Request bodies larger than this are refused before they are read (413). Texts themselves are
# limited to attnscope.capture.tokens.MAX_TEXT_CHARS characters (1,000,000), in UTF-8 at most 4 MB,
# JSON-escaped at most 6 bytes a character.
MAX_REQUEST_BYTES = 8_000_000


def create_app(host: ModelHost, *, api_key: str | None = None) -> FastAPI:
    """The app over ``host``; with ``api_key`` the ``/v1`` endpoints require ``Authorization: Bearer``."""
    from fastapi_offline import FastAPIOffline

    app = FastAPIOffline(
        title="attnscope",
        version=__version__,
        description="What a transformer language model attends to, and why it predicts what it predicts.",
    )
    web = resources.files("attnscope") / "web"
    add_error_handlers(app)

    @app.middleware("http")
    async def limit_request_size(request: Request, call_next: Any) -> Response:
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > MAX_REQUEST_BYTES):
            return error_response(413, f"request body over {MAX_REQUEST_BYTES:,} bytes", "too_large")
        if declared is None and request.method in ("POST", "PUT", "PATCH"):
            body = await request.body()  # chunked upload: read it once, bounded
            if len(body) > MAX_REQUEST_BYTES:
                return error_response(413, f"request body over {MAX_REQUEST_BYTES:,} bytes", "too_large")
        return await call_next(request)

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(str(web / "index.html"), media_type="text/html")

    app.mount("/static", StaticFiles(directory=str(web)), name="static")

    from attnscope.server.routes import analysis, analyze, arrays, models, openai

    app.include_router(models.router(host))
    app.include_router(analyze.router(host))
    app.include_router(arrays.router(host))
    app.include_router(analysis.router(host))
    app.include_router(openai.router(host, api_key))
    return app
