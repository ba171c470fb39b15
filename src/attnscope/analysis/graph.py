"""The attention graph of one layer: tokens as nodes, an edge for every attention weight over a threshold.

An edge ``query → key`` is kept when the layer's attention weight ``A[query, key]`` (heads combined
by the head selector: one head, a list of heads (their mean), ``"mean"`` or ``"max"``) satisfies
``A[query, key] >= threshold`` and ``A[query, key] > 0`` (masked and zero weights are never edges,
even at threshold 0). Weights are raw softmax probabilities. Long inputs: of the edges over the
threshold only the ``max_edges`` heaviest are kept (ties broken by query, then key); the answer says
how many there were. The map is read ``ROW_CHUNK`` query rows at a time, so memory stays
O(ROW_CHUNK · N + max_edges) whatever the input length (the whole map is never materialised).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from attnscope.capture.selection import HeadSelector, Selection
from attnscope.capture.trace import Trace
from attnscope.errors import InputError

ROW_CHUNK = 256
DEFAULT_THRESHOLD = 0.1
DEFAULT_MAX_EDGES = 300
MAX_EDGES_LIMIT = 5000


@dataclass(frozen=True)
class AttentionGraph:
    """The kept edges of one layer's map and the selection they were read from."""

    view: Selection
    threshold: float
    max_edges: int
    n_tokens: int  # query tokens of the stack
    above_threshold: int  # every edge over the threshold (the kept ones are the heaviest of these)
    queries: np.ndarray  # (edges,) int64 query positions, heaviest edge first
    keys: np.ndarray  # (edges,) int64 key positions
    weights: np.ndarray  # (edges,) float64 attention weights

    @property
    def query_nodes(self) -> list[int]:
        """Query positions that a kept edge starts from, ascending."""
        return sorted(set(self.queries.tolist()))

    @property
    def key_nodes(self) -> list[int]:
        """Key positions that a kept edge ends at, ascending (cross-attention: the source's tokens)."""
        return sorted(set(self.keys.tolist()))


def check_threshold(threshold: float) -> float:
    """``threshold`` as a float in [0, 1] (NaN and infinities refused)."""
    value = float(threshold)
    if not math.isfinite(value) or not 0.0 <= value <= 1.0:
        raise InputError(f"threshold must be a number between 0 and 1; got {threshold!r}")
    return value


def check_max_edges(max_edges: int) -> int:
    if isinstance(max_edges, bool) or not isinstance(max_edges, int | np.integer):
        raise InputError(f"max_edges must be an integer; got {max_edges!r}")
    if not 1 <= int(max_edges) <= MAX_EDGES_LIMIT:
        raise InputError(f"max_edges must be between 1 and {MAX_EDGES_LIMIT}; got {max_edges}")
    return int(max_edges)


def heaviest(queries: np.ndarray, keys: np.ndarray, weights: np.ndarray, limit: int) -> np.ndarray:
    """(kept,) indexes of the ``limit`` heaviest edges, ordered by weight descending, then query, key."""
    order = np.lexsort((keys, queries, -weights))
    return order[:limit]


def threshold_edges(
    weights: np.ndarray, threshold: float, max_edges: int, *, row_offset: int = 0
) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
    """Edges of a (query, key) block: (count over the threshold, queries, keys, weights) of the
    ``max_edges`` heaviest, queries offset by ``row_offset``."""
    block = np.asarray(weights, dtype=np.float64)  # (query, key)
    mask = (block >= threshold) & (block > 0)
    rows, cols = np.nonzero(mask)
    values = block[rows, cols]
    keep = heaviest(rows, cols, values, max_edges)
    return int(rows.size), rows[keep].astype(np.int64) + row_offset, cols[keep].astype(np.int64), values[keep]


def combined_rows(trace: Trace, layer: int, head: HeadSelector, rows: np.ndarray, stack: str) -> np.ndarray:
    """(rows, key) one layer's weights with heads combined as ``head`` says (a list: their mean)."""
    weights = trace.attention(layer, head, rows=rows, stack=stack)
    if isinstance(head, list):
        weights = weights.mean(axis=0)
    return np.asarray(weights, dtype=np.float64)


def attention_graph(
    trace: Trace,
    *,
    layer: object = -1,
    head: object = "mean",
    threshold: float = DEFAULT_THRESHOLD,
    max_edges: int = DEFAULT_MAX_EDGES,
    stack: str | None = None,
) -> AttentionGraph:
    """The edges of one layer's map over ``threshold`` (see the module docstring), at most ``max_edges``."""
    threshold = check_threshold(threshold)
    max_edges = check_max_edges(max_edges)
    view = trace.select(layer=layer, head=head, stack=stack)
    if len(view.layers) != 1:
        raise InputError("the attention graph shows one layer: choose a layer index, not a range or all")
    combine = view.head
    if combine is None:
        raise InputError("the attention graph combines heads: choose a head, a list of heads, mean or max (not all)")
    n_query = len(trace.query_tokens(view.stack))
    count = 0
    kept_q, kept_k, kept_w = np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
    for start in range(0, n_query, ROW_CHUNK):
        rows = np.arange(start, min(n_query, start + ROW_CHUNK))
        block = combined_rows(trace, view.layers[0], combine, rows, view.stack)  # (rows, key)
        found, q, k, w = threshold_edges(block, threshold, max_edges, row_offset=start)
        count += found
        kept_q, kept_k, kept_w = np.concatenate([kept_q, q]), np.concatenate([kept_k, k]), np.concatenate([kept_w, w])
        best = heaviest(kept_q, kept_k, kept_w, max_edges)
        kept_q, kept_k, kept_w = kept_q[best], kept_k[best], kept_w[best]
    return AttentionGraph(view, threshold, max_edges, n_query, count, kept_q, kept_k, kept_w)
