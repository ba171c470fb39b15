"""Attention flow (Abnar & Zuidema 2020): maximum flow through the layer graph.

The graph has a node per (layer boundary, token): ``L + 1`` rows of ``N`` nodes. Layer ``l``
contributes an edge from token ``k`` below to token ``q`` above with capacity ``Â_l[q, k]``, the
residual-aware head-averaged attention used by rollout (``r·I + (1 − r)·A``, rows renormalised).
The flow of input token ``j`` into query ``q`` is the maximum flow from node ``(0, j)`` to node
``(L, q)``. Unlike rollout (a product of matrices), flow is limited by the narrowest layer on
every path.

Solver: ``scipy.sparse.csgraph.maximum_flow`` (Dinic) on integer capacities (the weights times
``2**20``, so values are exact to ~1e-6), one solve per input token, on the sub-graph of nodes that
can reach the query. Cost grows like ``N × L × N²``: inputs are limited to ``MAX_FLOW_TOKENS``.
"""

from __future__ import annotations

import numpy as np

from attnscope.analysis.rollout import residual_attention, residual_layers
from attnscope.capture.trace import Trace
from attnscope.errors import InputError
from attnscope.progress import Progress, report

MAX_FLOW_TOKENS = 256
CAPACITY_SCALE = 2**20


def attention_flow(
    trace: Trace,
    *,
    query: int = -1,
    stack: str | None = None,
    residual: float = 0.5,
    head: str = "mean",
    max_tokens: int = MAX_FLOW_TOKENS,
    progress: Progress | None = None,
) -> np.ndarray:
    """(tokens,) maximum flow from each input token into position ``query`` after the last layer."""
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import maximum_flow

    name, layers = residual_layers(trace, stack, residual, "attention flow")
    n = len(trace.query_tokens(name))
    if n > max_tokens:
        raise InputError(
            f"attention flow is limited to {max_tokens} tokens (one max-flow solve per token over "
            f"layers x tokens^2 edges); this input has {n}. Use rollout for longer inputs."
        )
    target = trace.resolve_rows(query, name)[0]
    n_layers = len(layers)

    # Walk down from the query: which tokens at each boundary can still reach it.
    mixed = [residual_attention(trace, layer, name, residual, head) for layer in range(n_layers)]
    alive = [np.zeros(n, dtype=bool) for _ in range(n_layers + 1)]
    alive[n_layers][target] = True
    for layer in range(n_layers - 1, -1, -1):
        alive[layer] = np.asarray((mixed[layer][alive[layer + 1]] > 0).any(axis=0))
    ids = [np.full(n, -1, dtype=np.int64) for _ in range(n_layers + 1)]
    count = 0
    for boundary in range(n_layers + 1):
        live = np.flatnonzero(alive[boundary])
        ids[boundary][live] = np.arange(count, count + len(live))
        count += len(live)

    sources, sinks, capacities = [], [], []
    for layer in range(n_layers):
        above, below = np.flatnonzero(alive[layer + 1]), np.flatnonzero(alive[layer])
        block = np.round(mixed[layer][np.ix_(above, below)] * CAPACITY_SCALE).astype(np.int64)  # (above, below)
        rows, cols = np.nonzero(block)
        sources.append(ids[layer][below[cols]])
        sinks.append(ids[layer + 1][above[rows]])
        capacities.append(block[rows, cols])
    graph = csr_matrix(
        (np.concatenate(capacities).astype(np.int32), (np.concatenate(sources), np.concatenate(sinks))),
        shape=(count, count),
    )
    sink = int(ids[n_layers][target])
    flows = np.zeros(n, dtype=np.float64)
    sources_alive = np.flatnonzero(alive[0])
    for done, token in enumerate(sources_alive):
        report(progress, done, len(sources_alive), "attention flow")
        flows[token] = maximum_flow(graph, int(ids[0][token]), sink, method="dinic").flow_value / CAPACITY_SCALE
    report(progress, len(sources_alive), len(sources_alive), "attention flow")
    return flows
