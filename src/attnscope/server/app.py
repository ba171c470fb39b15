"""The FastAPI application: JSON API, binary attention arrays, and the static front end.

Every route is a plain function (FastAPI runs it in its thread pool); forward passes are
serialised per model by ``capture``. Library errors become 4xx with a one-line ``detail``; anything
else becomes a 500 with no stack trace sent to the client.
"""

from __future__ import annotations

import asyncio
import json
import logging
from importlib import resources
from typing import Any, Literal

import numpy as np
from fastapi import FastAPI, Query, Request
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field

from attnscope import __version__
from attnscope.capture.engine import capture
from attnscope.errors import AttnscopeError, InputError, ModelNotFoundError, OutOfRangeError
from attnscope.render.json import analysis_json, resolve_query
from attnscope.server import binary
from attnscope.server.host import ModelHost

log = logging.getLogger("attnscope.server")

# Requests larger than this are refused before they are read (413).
MAX_REQUEST_BYTES = 1_000_000
# Texts are capped well below the request limit; longer documents belong to the CLI or library.
MAX_TEXT_CHARS = 200_000
MAX_MATRIX_CELLS = 4096 * 4096
PROGRESS_STREAM_SECONDS = 900
MAX_GRID_KEYS = 2048  # the all-heads grid max-pools longer rows to at most this many columns


class AnalyzeRequest(BaseModel):
    text: str = Field(..., description="the input text")
    layer: int = -1
    head: int | Literal["mean", "max"] = "mean"
    query: int = -1
    top_k: int = Field(10, ge=1, le=100)
    backend: Literal["auto", "full", "qk"] = "auto"
    stack: Literal["encoder", "decoder", "cross"] | None = None
    progress_id: str | None = Field(None, max_length=64, description="publish forward progress at /api/progress/{id}")
    include_tokens: bool = Field(
        True, description="false: leave out tokens (the client has them from an earlier answer on the same text)"
    )


class SwitchRequest(BaseModel):
    spec: str = Field(..., min_length=1, max_length=500)


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"detail": message}, status_code=status)


def create_app(host: ModelHost) -> FastAPI:
    app = FastAPI(
        title="attnscope",
        version=__version__,
        description="What a transformer language model attends to, and what it predicts.",
    )
    web = resources.files("attnscope") / "web"

    @app.middleware("http")
    async def limit_request_size(request: Request, call_next: Any) -> Response:
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > MAX_REQUEST_BYTES):
            return _error(413, f"request body over {MAX_REQUEST_BYTES:,} bytes")
        if declared is None and request.method in ("POST", "PUT", "PATCH"):
            body = await request.body()  # chunked upload: read it once, bounded
            if len(body) > MAX_REQUEST_BYTES:
                return _error(413, f"request body over {MAX_REQUEST_BYTES:,} bytes")
        return await call_next(request)

    @app.exception_handler(AttnscopeError)
    async def library_error(_: Request, error: AttnscopeError) -> JSONResponse:
        status = 404 if isinstance(error, ModelNotFoundError) else 400
        return _error(status, str(error))

    @app.exception_handler(Exception)
    async def unexpected_error(_: Request, error: Exception) -> JSONResponse:
        log.exception("unexpected error", exc_info=error)
        return _error(500, "internal error; the server log has the details")

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(str(web / "index.html"), media_type="text/html")

    app.mount("/static", StaticFiles(directory=str(web)), name="static")

    @app.get("/api/model", summary="The loaded model and the loading status")
    def get_model() -> dict[str, Any]:
        return host.info()

    @app.get("/api/models", summary="The model catalog, with what is installed")
    def get_models() -> list[dict[str, object]]:
        from attnscope.models import list_models

        return list_models()

    @app.post("/api/model", summary="Load another model (the current one serves until it is ready)")
    def switch_model(request: SwitchRequest) -> dict[str, Any]:
        host.load(request.spec)
        return host.info()

    @app.post("/api/analyze", summary="Attention of one query token and the next-token prediction")
    def analyze(request: AnalyzeRequest) -> dict[str, Any]:
        if len(request.text) > MAX_TEXT_CHARS:
            raise InputError(f"text is {len(request.text):,} characters; the server accepts {MAX_TEXT_CHARS:,}")
        report = host.progress_reporter(request.progress_id)
        try:
            trace_id, trace = host.trace_for(
                request.text,
                request.backend,
                lambda model: capture(model, request.text, backend=request.backend, progress=report),
            )
        finally:
            host.finish_progress(request.progress_id)
        result = analysis_json(
            trace,
            layer=request.layer,
            head=request.head,
            query=request.query,
            top_k=request.top_k,
            stack=request.stack,
        )
        stack = result["attention"]["stack"]
        if not request.include_tokens:  # a layer/head/query change on the same text: the weights suffice
            for key in ("tokens", "target_tokens", "provenance"):
                result.pop(key, None)
        result["trace_id"] = trace_id
        result["view"] = {
            "stacks": trace.stacks(),
            "layers": trace.num_layers(stack),
            "heads": trace.num_heads(stack),
            "query_tokens": len(trace.query_tokens(stack)),
        }
        return result

    @app.get("/api/progress/{progress_id}", summary="Server-sent events: forward-pass progress of an analysis")
    async def progress_events(progress_id: str) -> StreamingResponse:
        async def events() -> Any:
            last = None
            deadline = asyncio.get_running_loop().time() + PROGRESS_STREAM_SECONDS
            while asyncio.get_running_loop().time() < deadline:
                state = host.progress_state(progress_id)
                if state != last:
                    yield f"data: {json.dumps(state)}\n\n"
                    last = state
                if state.get("finished"):
                    host.forget_progress(progress_id)
                    return
                await asyncio.sleep(0.1)

        return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})

    @app.get("/api/traces/{trace_id}/row", summary="One query row: float16 (heads or mean/max, key)")
    def row(
        trace_id: str,
        layer: int = -1,
        head: str = "all",
        query: int = -1,
        stack: str | None = None,
    ) -> Response:
        trace = host.get_trace(trace_id)
        query_index = resolve_query(trace, query, stack)
        selector: Any = None if head == "all" else head if head in ("mean", "max") else _int(head, "head")
        weights = trace.attention(layer, selector, rows=[query_index], stack=stack)
        array = weights[:, 0] if weights.ndim == 3 else weights  # (heads, key) or (1, key)
        return _binary(array, "float16", layer=trace.resolve_layer(layer, stack), query=query_index)

    @app.get("/api/traces/{trace_id}/grid", summary="All layers x heads for one query: float16 (layers, heads, key)")
    def grid(trace_id: str, query: int = -1, stack: str | None = None) -> Response:
        trace = host.get_trace(trace_id)
        query_index = resolve_query(trace, query, stack)
        layers = trace.captured_layers(stack)
        array = np.stack([trace.attention(layer, None, rows=[query_index], stack=stack)[:, 0] for layer in layers])
        factor = -(-array.shape[-1] // MAX_GRID_KEYS)  # long rows: max over blocks of keys (thumbnails)
        if factor > 1:
            padded = np.zeros((*array.shape[:2], factor * -(-array.shape[-1] // factor)), dtype=array.dtype)
            padded[..., : array.shape[-1]] = array
            array = padded.reshape(*array.shape[:2], -1, factor).max(axis=-1)
        return _binary(array, "float16", layers=layers, query=query_index, pooled=factor)

    @app.get("/api/traces/{trace_id}/matrix", summary="A whole (query, key) map, uint8 (default) or float16")
    def matrix(
        trace_id: str,
        layer: int = -1,
        head: str = "mean",
        stack: str | None = None,
        encoding: Literal["uint8", "float16"] = Query("uint8"),
    ) -> Response:
        trace = host.get_trace(trace_id)
        n_query, n_key = len(trace.query_tokens(stack)), len(trace.key_tokens(stack))
        if n_query * n_key > MAX_MATRIX_CELLS:
            raise InputError(f"a {n_query}x{n_key} map is over {MAX_MATRIX_CELLS:,} cells; ask for rows instead")
        selector: Any = head if head in ("mean", "max") else _int(head, "head")
        weights = trace.attention(layer, selector, stack=stack)
        return _binary(weights, encoding, layer=trace.resolve_layer(layer, stack))

    @app.get("/api/traces/{trace_id}/pyramid", summary="Tile pyramid of one map: levels, tile grid, global maximum")
    def pyramid(trace_id: str, layer: int = -1, head: str = "mean", stack: str | None = None) -> dict[str, Any]:
        selector: Any = head if head in ("mean", "max") else _int(head, "head")
        tiles = host.pyramid(trace_id, layer, selector, stack)
        top = tiles.get(tiles.levels - 1, 0, 0)
        return {**tiles.describe(), "max": float(top.max()), "layer": tiles.layer, "head": head, "stack": tiles.stack}

    @app.get("/api/traces/{trace_id}/tile", summary="One 256x256 tile (max-pooled above level 0), uint8 binary")
    def tile(
        trace_id: str, level: int, ty: int, tx: int, layer: int = -1, head: str = "mean", stack: str | None = None
    ) -> Response:
        selector: Any = head if head in ("mean", "max") else _int(head, "head")
        tiles = host.pyramid(trace_id, layer, selector, stack)
        values = tiles.get(level, ty, tx)
        return _binary(values, "uint8", level=level, ty=ty, tx=tx, tile=tiles.tile, factor=1 << level)

    from attnscope.server.analysis_routes import add_analysis_routes
    from attnscope.server.openai import add_openai_routes

    add_analysis_routes(app, host)
    add_openai_routes(app, host)
    return app


def _int(value: str, name: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise OutOfRangeError(f"{name} must be an integer, 'mean' or 'max', not {value!r}") from None


def _binary(array: np.ndarray, encoding: binary.Encoding, **extra: object) -> Response:
    return Response(binary.encode(array, encoding, **extra), media_type="application/octet-stream")
