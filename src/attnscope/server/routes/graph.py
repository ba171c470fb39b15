"""``GET /api/traces/{id}/graph`` and ``/sankey``: the attention graph of one layer and the information
flow to the prediction, computed from a cached trace's lazily recomputed attention (the JSON that
``attnscope graph --json`` and ``attnscope sankey --json`` print). The Sankey reads every row of every
layer, so it is limited to ``MAX_SANKEY_TOKENS`` tokens here; the CLI and the library take longer texts.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from attnscope.analysis.rollout import self_attention_stack
from attnscope.errors import InputError
from attnscope.server.host import ModelHost
from attnscope.server.schemas_graph import GraphParams, SankeyParams

MAX_SANKEY_TOKENS = 4096


def router(host: ModelHost) -> APIRouter:
    api = APIRouter(prefix="/api/traces", tags=["arrays"])

    @api.get("/{trace_id}/graph", summary="Attention graph of one layer: edges over a threshold (`graph --json`)")
    def graph_route(trace_id: str, params: Annotated[GraphParams, Query()]) -> dict[str, Any]:
        from attnscope.analysis.graph import attention_graph
        from attnscope.render.graph import graph_json

        trace = host.get_trace(trace_id)
        graph = attention_graph(
            trace,
            layer=params.layer,
            head=params.head,
            threshold=params.threshold,
            max_edges=params.max_edges,
            stack=params.stack,
        )
        return graph_json(trace, graph)

    @api.get(
        "/{trace_id}/sankey", summary="Rollout from the input tokens to the prediction as a Sankey (`sankey --json`)"
    )
    def sankey_route(trace_id: str, params: Annotated[SankeyParams, Query()]) -> dict[str, Any]:
        from attnscope.analysis.sankey import flow_sankey
        from attnscope.render.graph import sankey_json

        trace = host.get_trace(trace_id)
        n_tokens = len(trace.query_tokens(self_attention_stack(trace, params.stack, "decoder")))
        if n_tokens > MAX_SANKEY_TOKENS:
            raise InputError(
                f"the flow Sankey in the web app is limited to {MAX_SANKEY_TOKENS} tokens (this text has "
                f"{n_tokens}); use attnscope sankey for longer texts"
            )
        sankey = flow_sankey(
            trace,
            query=params.query,
            top=params.top,
            tokens=params.token_list(),
            head=params.head,
            residual=params.residual,
            stack=params.stack,
        )
        return sankey_json(trace, sankey)

    return api
