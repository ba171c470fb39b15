"""The model view's pooled whole maps, the head atlas and the joint query–key projection.

- ``GET /api/traces/{id}/model-view``: every layer × head's whole map pooled to at most
  ``size × size`` cells (max or mean over blocks of ``f × f`` tokens), float16 binary
  ``(layers, heads, cells_q, cells_k)``. Exact (every query row read, ``O(layers · heads · N²)``) up
  to :data:`EXACT_MODEL_VIEW_TOKENS` tokens; above, each cell pools :data:`ROWS_PER_BLOCK` evenly
  spaced query rows of its block (all their keys; the header's ``rows_per_block`` says so); traces
  over :data:`MAX_MODEL_VIEW_TOKENS` tokens are refused. Answers are kept per trace.
- ``POST /api/atlas`` (``atlas --json``) and ``POST /api/qk-projection`` (``atlas --qk --json``):
  the JSON of :mod:`attnscope.render.atlas_json`. The projection needs queries and keys: it reads the
  analysis' trace when that kept them (long texts), else captures the text with ``backend="qk"``.
  Neither takes ``INTERACTIVE_MAX_TOKENS`` (``check_interactive``): that bound is for routes that run
  the model again per answer (attribution, counterfactuals, reports) or score every row (syntax). These
  read the page's trace — the text /api/analyze already captured, within the model's context — and
  bound their own work: the atlas reads ``SAMPLED_ROWS`` query rows above ``EXACT_TOKENS`` tokens and
  the projection at most ``MAX_POINTS`` points, so they follow the analysis' limit, as the model view does.
  On an encoder–decoder with no ``stack``, the atlas uses the page's default (cross-attention heads are
  points like any other) and the projection the encoder (it needs self-attention).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Annotated, Any, cast

from fastapi import APIRouter, Query
from fastapi.responses import Response

from attnscope.capture.engine import Backend, capture
from attnscope.capture.overview import PooledMaps, pooled_maps
from attnscope.capture.sources import QKSource
from attnscope.errors import InputError
from attnscope.models.loaded import LoadedModel
from attnscope.server import binary
from attnscope.server.host import ModelHost
from attnscope.server.routes.analyze import TRACE_TOP_K
from attnscope.server.schemas_atlas import AtlasRequest, ModelViewParams, QKRequest

MAX_MODEL_VIEW_TOKENS = 8192
EXACT_MODEL_VIEW_TOKENS = 2048  # above: each cell from ROWS_PER_BLOCK evenly spaced query rows of its block
ROWS_PER_BLOCK = 4
KEPT_MODEL_VIEWS = 8


def router(host: ModelHost) -> APIRouter:
    api = APIRouter(prefix="/api", tags=["views"])
    kept: OrderedDict[tuple[Any, ...], PooledMaps] = OrderedDict()
    lock = threading.Lock()

    def trace_of(model: LoadedModel, text: str, backend: str, job: Any) -> Any:
        def make(chosen: LoadedModel) -> Any:
            return capture(chosen, text, backend=cast(Backend, backend), top_k=TRACE_TOP_K, progress=job)

        return host.trace_for(model, text, backend, make)[1]

    @api.get(
        "/traces/{trace_id}/model-view",
        summary="Every layer x head's whole map, pooled: float16 (layers, heads, cells, cells)",
    )
    def model_view(trace_id: str, params: Annotated[ModelViewParams, Query()]) -> Response:
        trace = host.get_trace(trace_id)
        stack = trace.stack_name(params.stack)
        n_query, n_key = trace.source.shape(stack)
        if max(n_query, n_key) > MAX_MODEL_VIEW_TOKENS:
            raise InputError(
                f"the model view computes every head's whole map: at most {MAX_MODEL_VIEW_TOKENS:,} tokens "
                f"(this trace has {max(n_query, n_key):,}); use the heatmap's tiles for one head"
            )
        key = (trace_id, stack, params.size, params.pool)
        with lock:
            found = kept.get(key)
        if found is None:
            sampled = ROWS_PER_BLOCK if n_query > EXACT_MODEL_VIEW_TOKENS else None
            found = pooled_maps(trace, params.size, pool=params.pool, stack=stack, rows_per_block=sampled)
            with lock:
                kept[key] = found
                while len(kept) > KEPT_MODEL_VIEWS:
                    kept.popitem(last=False)
        body = binary.encode(
            found.maps,
            "float16",
            layers=found.layers,
            factor=found.factor,
            pool=found.pool,
            tokens=list(found.shape),
            rows_per_block=found.rows_per_block,
            stack=stack,
        )
        return Response(body, media_type="application/octet-stream")

    @api.post("/atlas", summary="Every head as a point: PCA, t-SNE or UMAP of its map and metrics (`atlas --json`)")
    def atlas_route(request: AtlasRequest) -> dict[str, Any]:
        from attnscope.methods.atlas import head_atlas
        from attnscope.render.atlas_json import atlas_json

        model = host.current()
        with host.running(request.progress_id) as job:
            trace = trace_of(model, request.text, request.backend, job)
            atlas = head_atlas(
                trace,
                projection=request.projection,
                seed=request.seed,
                perplexity=request.perplexity,
                n_neighbors=request.n_neighbors,
                stack=request.stack,
                threshold=request.threshold,
                progress=job,
            )
        return atlas_json(atlas)

    @api.post(
        "/qk-projection",
        summary="One layer's queries and keys in AttentionViz's joint space, projected (`atlas --qk --json`)",
    )
    def qk_route(request: QKRequest) -> dict[str, Any]:
        from attnscope.methods.atlas import qk_projection
        from attnscope.render.atlas_json import qk_projection_json

        model = host.current()
        with host.running(request.progress_id) as job:
            trace = trace_of(model, request.text, "auto", job)  # the analysis' trace: long texts keep q/k
            if not isinstance(trace.source, QKSource):
                trace = trace_of(model, request.text, "qk", job)
            result = qk_projection(
                trace,
                request.layer,
                request.head,
                projection=request.projection,
                seed=request.seed,
                perplexity=request.perplexity,
                n_neighbors=request.n_neighbors,
                max_points=request.max_points,
                stack=request.stack,
            )
        return qk_projection_json(result)

    return api
