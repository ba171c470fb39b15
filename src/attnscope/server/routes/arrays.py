"""Compact binary arrays of a cached trace for the browser: rows, the all-heads grid, whole maps, tiles."""

from __future__ import annotations

from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Query
from fastapi.responses import Response

from attnscope.capture.selection import parse_head
from attnscope.errors import InputError
from attnscope.render.json import pyramid_json
from attnscope.server import binary
from attnscope.server.host import ModelHost
from attnscope.server.schemas import GridParams, MapParams, MatrixParams, RowParams, TileParams

MAX_MATRIX_CELLS = 4096 * 4096
MAX_GRID_KEYS = 2048  # the all-heads grid max-pools longer rows to at most this many columns


def _binary(array: np.ndarray, encoding: binary.Encoding, **extra: object) -> Response:
    return Response(binary.encode(array, encoding, **extra), media_type="application/octet-stream")


def _one_map(head: str) -> Any:
    selector = parse_head(head)
    if selector is None:
        raise InputError("a map combines heads: choose a head, a list of heads, mean or max (not all)")
    return selector


def router(host: ModelHost) -> APIRouter:
    api = APIRouter(prefix="/api/traces", tags=["arrays"])

    @api.get("/{trace_id}/row", summary="One query row: float16 (heads or mean/max, key)")
    def row(trace_id: str, params: Annotated[RowParams, Query()]) -> Response:
        trace = host.get_trace(trace_id)
        view = trace.select(layer=params.layer, head=params.head, query=params.query, stack=params.stack)
        weights = trace.attention(view.layers[0], view.head, rows=[view.query], stack=view.stack)
        array = weights[:, 0] if weights.ndim == 3 else weights  # (heads, key) or (1, key)
        if isinstance(view.head, list):
            array = array.mean(axis=0, keepdims=True)
        return _binary(array, "float16", layer=view.layers[0], query=view.query)

    @api.get("/{trace_id}/grid", summary="All layers x heads for one query: float16 (layers, heads, key)")
    def grid(trace_id: str, params: Annotated[GridParams, Query()]) -> Response:
        trace = host.get_trace(trace_id)
        view = trace.select(query=params.query, stack=params.stack)
        layers = trace.captured_layers(view.stack)
        array = np.stack([trace.attention(layer, None, rows=[view.query], stack=view.stack)[:, 0] for layer in layers])
        factor = -(-array.shape[-1] // MAX_GRID_KEYS)  # long rows: max over blocks of keys (thumbnails)
        if factor > 1:
            padded = np.zeros((*array.shape[:2], factor * -(-array.shape[-1] // factor)), dtype=array.dtype)
            padded[..., : array.shape[-1]] = array
            array = padded.reshape(*array.shape[:2], -1, factor).max(axis=-1)
        return _binary(array, "float16", layers=layers, query=view.query, pooled=factor)

    @api.get("/{trace_id}/matrix", summary="A whole (query, key) map, uint8 (default) or float16")
    def matrix(trace_id: str, params: Annotated[MatrixParams, Query()]) -> Response:
        trace = host.get_trace(trace_id)
        stack = trace.stack_name(params.stack)
        n_query, n_key = len(trace.query_tokens(stack)), len(trace.key_tokens(stack))
        if n_query * n_key > MAX_MATRIX_CELLS:
            raise InputError(f"a {n_query}x{n_key} map is over {MAX_MATRIX_CELLS:,} cells; ask for tiles instead")
        head = _one_map(params.head)
        layer = trace.resolve_layer(params.layer, stack)
        weights = trace.attention(layer, head, stack=stack)
        if isinstance(head, list):
            weights = weights.mean(axis=0)
        return _binary(weights, params.encoding, layer=layer)

    @api.get("/{trace_id}/pyramid", summary="Tile pyramid of one map: levels, tile grid, global maximum")
    def pyramid(trace_id: str, params: Annotated[MapParams, Query()]) -> dict[str, Any]:
        return pyramid_json(host.pyramid(trace_id, params.layer, _one_map(params.head), params.stack))

    @api.get("/{trace_id}/tile", summary="One 256x256 tile (max-pooled above level 0), uint8 binary")
    def tile(trace_id: str, params: Annotated[TileParams, Query()]) -> Response:
        tiles = host.pyramid(trace_id, params.layer, _one_map(params.head), params.stack)
        values = tiles.get(params.level, params.ty, params.tx)
        return _binary(
            values, "uint8", level=params.level, ty=params.ty, tx=params.tx, tile=tiles.tile, factor=1 << params.level
        )

    return api
