"""Aggregation of attention across heads and layers, special-token handling and display scaling.

- heads: one index, a list of indexes (averaged), ``"mean"`` or ``"max"`` over all heads;
- layers: one index, a ``(first, last)`` inclusive range or ``"all"``, averaged;
- ``exclude_special=True`` sets keys that are special tokens to 0 and renormalises each row to sum
  to 1 (an explicit option, labelled wherever it is shown);
- :func:`scale` gives ``raw`` values (default) or a ``minmax`` rescaling to [0, 1] for display.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from attnscope.capture import selection
from attnscope.capture.selection import HeadSelector, LayerSelector, RowSelector
from attnscope.capture.trace import Trace
from attnscope.errors import InputError

Scaling = Literal["raw", "minmax"]


def resolve_layers(trace: Trace, layers: LayerSelector, stack: str | None = None) -> list[int]:
    """Layer indexes for ``layers`` (see :func:`attnscope.capture.selection.parse_layers`)."""
    name = trace.stack_name(stack)
    return selection.resolve_layers(trace.num_layers(name), trace.captured_layers(name), layers, name)


def aggregate_attention(
    trace: Trace,
    *,
    layers: LayerSelector = -1,
    head: HeadSelector = "mean",
    rows: RowSelector = None,
    stack: str | None = None,
    exclude_special: bool = False,
) -> np.ndarray:
    """(rows, key) attention averaged over ``layers``, with heads combined by ``head``.

    ``head`` is an index, a list of indexes (their mean), ``"mean"`` or ``"max"``.
    """
    name = trace.stack_name(stack)
    chosen = resolve_layers(trace, layers, name)
    head = selection.parse_head(head)
    if head is None:
        raise InputError("aggregate_attention combines heads: pass an index, a list, 'mean' or 'max', not 'all'")
    total: np.ndarray | None = None
    for layer in chosen:
        weights = trace.attention(layer, head, rows, stack=name)
        if isinstance(head, list):
            weights = weights.mean(axis=0)
        weights = weights.astype(np.float64)
        total = weights if total is None else total + weights
    assert total is not None
    result = total / len(chosen)
    if exclude_special:
        special = np.array([t.special for t in trace.key_tokens(name)], dtype=bool)
        result = np.where(special[None, :], 0.0, result)
        sums = result.sum(axis=-1, keepdims=True)
        result = np.divide(result, sums, out=np.zeros_like(result), where=sums > 0)
    return result


def scale(values: np.ndarray, scaling: Scaling = "raw") -> np.ndarray:
    """``raw`` returns the values; ``minmax`` maps them to [0, 1] (a constant vector gives zeros)."""
    array = np.asarray(values, dtype=np.float64)
    if scaling == "raw":
        return array
    if scaling != "minmax":
        raise InputError(f"unknown scaling {scaling!r}; use raw or minmax")
    finite = array[np.isfinite(array)]
    if finite.size == 0:
        return array
    low, high = float(finite.min()), float(finite.max())
    return np.zeros_like(array) if high == low else (array - low) / (high - low)
