"""Information flow as a Sankey diagram: how attention rollout carries the input tokens to the prediction.

Definitions (``L`` layers, ``N`` tokens, prediction position ``t``, residual share ``r``):

- ``Â_ℓ = r·I + (1 − r)·A_ℓ`` with rows renormalised to sum to 1, where ``A_ℓ`` is layer ℓ's
  attention with heads combined by the head selector (the matrix rollout and flow use,
  :func:`attnscope.analysis.rollout.residual_attention`).
- Boundary ``b`` (0..L) is the residual stream before layer ``b`` (``b = L``: after the last layer).
  The share of the prediction held by token ``i`` at boundary ``b`` is the rollout row
  ``s_L = e_t``, ``s_b = s_{b+1} · Â_b`` (a row vector), so ``s_b[j] = Σ_i s_{b+1}[i] · Â_b[i, j]``;
  ``s_0`` is the rollout ``R[t, :]``. Every ``s_b`` sums to 1.
- Layer ℓ carries ``F_ℓ[i, j] = s_{ℓ+1}[i] · Â_ℓ[i, j]`` from node ``(ℓ, j)`` to node ``(ℓ+1, i)``.
  Conservation is exact: what leaves ``(ℓ, j)`` is ``Σ_i F_ℓ[i, j] = s_ℓ[j]``, what enters
  ``(ℓ+1, i)`` is ``Σ_j F_ℓ[i, j] = s_{ℓ+1}[i]`` (rows of ``Â`` sum to 1), so every node passes on
  exactly what it receives, and each layer's links sum to 1.
- Chosen tokens ``C`` (the prediction position ``t``, the ``k`` tokens with the largest ``s_0`` (ties:
  the earlier token), and any tokens asked for) are nodes at every boundary; the other tokens are
  merged into one "other" node per boundary, whose value and links are the sums over its tokens, so
  conservation still holds for every node.

Cost: ``s_b`` reads every row of every layer that the prediction depends on, ``CHUNK`` rows at a time
(time O(L·N²), memory O(CHUNK·N)); the links between chosen tokens need only their rows of ``Â``.
Attention flow (max-flow) is not used here: its per-token flows are not additive, so they cannot be
split into links whose totals are conserved.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from attnscope.analysis.graph import combined_rows
from attnscope.analysis.rollout import residual_layers, self_attention_stack
from attnscope.capture.selection import resolve_index
from attnscope.capture.trace import Trace
from attnscope.errors import InputError

CHUNK = 256
DEFAULT_TOP = 5
MAX_TOP = 20
MAX_CHOSEN = 32


@dataclass(frozen=True)
class FlowSankey:
    """Node values and links of the Sankey (see the module docstring); group ``g`` is ``tokens[g]``
    for ``g < len(tokens)`` and "other" for ``g == len(tokens)``."""

    stack: str
    head: object
    residual: float
    target: int  # the prediction position t
    tokens: list[int]  # chosen token positions, ascending
    n_tokens: int
    shares: np.ndarray  # (L + 1, N) s_b for every token
    values: np.ndarray  # (L + 1, groups) node values: s_b summed per group
    links: np.ndarray  # (L, groups above, groups below) F_ℓ summed per group pair


def mixed_rows(trace: Trace, layer: int, head: object, rows: np.ndarray, stack: str, residual: float) -> np.ndarray:
    """(rows, key) rows of ``Â_layer``: ``r·I + (1 − r)·A`` renormalised."""
    attention = combined_rows(trace, layer, head, rows, stack)  # type: ignore[arg-type]
    mixed = (1 - residual) * attention
    mixed[np.arange(len(rows)), rows] += residual
    return mixed / mixed.sum(axis=-1, keepdims=True)


def prediction_shares(
    trace: Trace, target: int, stack: str, layers: range, head: object, residual: float
) -> np.ndarray:
    """(L + 1, N) ``s_b`` for every boundary, from ``s_L = e_target`` down (only rows with ``s > 0`` read)."""
    n = len(trace.query_tokens(stack))
    shares = np.zeros((len(layers) + 1, n))
    shares[len(layers), target] = 1.0
    for layer in reversed(layers):
        above = shares[layer + 1]
        live = np.flatnonzero(above > 0)
        for start in range(0, len(live), CHUNK):
            rows = live[start : start + CHUNK]
            shares[layer] += above[rows] @ mixed_rows(trace, layer, head, rows, stack, residual)
    return shares


def choose_tokens(origin: np.ndarray, target: int, top: int, picked: list[int]) -> list[int]:
    """Chosen positions: ``target``, the ``top`` largest of ``origin`` (ties: the earlier), ``picked``."""
    ranked = np.lexsort((np.arange(len(origin)), -origin))[:top]
    chosen = sorted({target, *map(int, ranked), *picked})
    if len(chosen) > MAX_CHOSEN:
        raise InputError(f"a Sankey shows at most {MAX_CHOSEN} tokens; {len(chosen)} were chosen")
    return chosen


def flow_sankey(
    trace: Trace,
    *,
    query: int = -1,
    top: int = DEFAULT_TOP,
    tokens: list[int] | None = None,
    head: object = "mean",
    residual: float = 0.5,
    stack: str | None = None,
) -> FlowSankey:
    """The Sankey of rollout from the inputs to position ``query`` (default: the last, the prediction)."""
    if isinstance(top, bool) or not isinstance(top, int) or not 0 <= top <= MAX_TOP:
        raise InputError(f"top must be an integer between 0 and {MAX_TOP}; got {top!r}")
    if not isinstance(residual, int | float) or not math.isfinite(residual):
        raise InputError(f"residual must be a number between 0 and 1; got {residual!r}")
    stack = self_attention_stack(trace, stack, "decoder")  # seq2seq by default: the decoder's prediction
    name, layers = residual_layers(trace, stack, float(residual), "the flow Sankey")
    view = trace.select(head=head, query=query, stack=name)
    if view.head is None:
        raise InputError("the flow Sankey combines heads: choose a head, a list of heads, mean or max (not all)")
    n = len(trace.query_tokens(name))
    where = f"this text ({name} stack)"
    picked = [resolve_index(token, n, "token", where, "tokens") for token in tokens or []]
    shares = prediction_shares(trace, view.query, name, layers, view.head, float(residual))  # (L + 1, N)
    chosen = choose_tokens(shares[0], view.query, top, picked)
    groups = len(chosen) + 1
    member = np.full(n, len(chosen))
    member[chosen] = np.arange(len(chosen))
    values = np.zeros((len(layers) + 1, groups))
    for boundary in range(len(layers) + 1):
        np.add.at(values[boundary], member, shares[boundary])
    rows = np.asarray(chosen)
    links = np.zeros((len(layers), groups, groups))  # (layer, above, below)
    for layer in layers:
        inside = shares[layer + 1, rows, None] * mixed_rows(trace, layer, view.head, rows, name, float(residual))
        inside = inside[:, rows]  # (chosen above, chosen below) F_ℓ between chosen tokens
        links[layer, :-1, :-1] = inside
        links[layer, :-1, -1] = np.maximum(values[layer + 1, :-1] - inside.sum(axis=1), 0.0)  # other below → chosen
        links[layer, -1, :-1] = np.maximum(values[layer, :-1] - inside.sum(axis=0), 0.0)  # chosen → other above
        links[layer, -1, -1] = max(values[layer + 1, -1] - links[layer, -1, :-1].sum(), 0.0)
    return FlowSankey(name, view.head, float(residual), view.query, chosen, n, shares, values, links)
