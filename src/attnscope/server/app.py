"""The FastAPI application: the JSON API, binary attention arrays, OpenAI-compatible endpoints, the front end.

Every route is a plain function (FastAPI runs it in its thread pool); forward passes are
serialised per model by ``capture``. Requests are validated by one Pydantic model per route
(:mod:`.schemas`); every refusal has the shape ``{"detail", "code"}`` (:mod:`.errors`). The API
documentation at ``/docs`` works offline: its assets are served from the installed package.
Request bodies are limited in size, and a server on a loopback address answers only requests
addressed to a loopback name (:mod:`.guards`).
"""

from __future__ import annotations

from collections.abc import Iterable
from importlib import resources
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from attnscope.server.errors import MaskedErrors, add_error_handlers
from attnscope.server.guards import BodyLimit, HostCheck
from attnscope.server.host import ModelHost
from attnscope.version import __version__

# Request bodies larger than this are refused (413): before they are read when their length is
# declared, as soon as this many bytes have arrived when they are chunked. Texts themselves are
# limited to attnscope.capture.tokens.MAX_TEXT_CHARS characters (1,000,000), in UTF-8 at most 4 MB,
# JSON-escaped at most 6 bytes a character.
MAX_REQUEST_BYTES = 8_000_000


def create_app(
    host: ModelHost,
    *,
    api_key: str | None = None,
    allowed_hosts: Iterable[str] | None = None,
    atlases: Iterable[str | Path] = (),
) -> FastAPI:
    """The app over ``host``; with ``api_key`` the ``/v1`` endpoints require ``Authorization: Bearer``;
    with ``allowed_hosts`` a request whose ``Host`` header names another host is refused (400
    ``bad_host``; ``attnscope serve`` passes the loopback names when it binds a loopback address).
    None: no check (the library's and the tests' use). ``atlases``: corpus atlas folders (``attnscope
    batch``) the page can open, by folder name (:mod:`.routes.corpus`); a bad one is refused here."""
    from fastapi_offline import FastAPIOffline

    app = FastAPIOffline(
        title="attnscope",
        version=__version__,
        description="What a transformer language model attends to, and why it predicts what it predicts.",
    )
    web = resources.files("attnscope") / "web"
    add_error_handlers(app)

    app.add_middleware(BodyLimit, limit=MAX_REQUEST_BYTES)
    if allowed_hosts is not None:
        app.add_middleware(HostCheck, allowed=list(allowed_hosts))  # added late: checked early
    app.add_middleware(MaskedErrors)  # outermost: every unexpected error answered and logged masked

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(str(web / "index.html"), media_type="text/html")

    app.mount("/static", StaticFiles(directory=str(web)), name="static")

    from attnscope.server.routes import (
        analysis,
        analyze,
        arrays,
        atlas,
        bias,
        compare_models,
        counterfactual,
        documents,
        exports,
        generation,
        graph,
        models,
        openai,
        reports,
        rules,
        runs,
        syntax,
    )

    app.include_router(models.router(host))
    app.include_router(analyze.router(host))
    app.include_router(arrays.router(host))
    app.include_router(graph.router(host))
    app.include_router(generation.router(host))
    app.include_router(analysis.router(host))
    app.include_router(counterfactual.router(host))
    app.include_router(compare_models.router(host))
    app.include_router(syntax.router(host))
    app.include_router(bias.router(host))
    app.include_router(openai.router(host, api_key))
    app.include_router(runs.router(host))
    app.include_router(reports.router(host))
    app.include_router(exports.router(host))
    app.include_router(rules.router(host))
    app.include_router(atlas.router(host))
    app.include_router(documents.router())
    from attnscope.batch.shelf import AtlasShelf
    from attnscope.server.routes import corpus

    app.include_router(corpus.router(AtlasShelf(atlases)))
    return app
