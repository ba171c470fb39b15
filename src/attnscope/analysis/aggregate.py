"""Aggregation of attention across heads and layers, special-token handling and display scaling.

- heads: one index, a list of indexes (averaged), ``"mean"`` or ``"max"`` over all heads;
- layers: one index, a ``(first, last)`` inclusive range or ``"all"``, averaged;
- ``exclude_special=True`` sets keys that are special tokens to 0 and renormalises each row to sum
  to 1 (an explicit option, labelled wherever it is shown);
- :func:`scale` gives ``raw`` values (default) or a ``minmax`` rescaling to [0, 1] for display.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Literal

import numpy as np

from attnscope.analysis.registry import register
from attnscope.capture.trace import HeadSelector, RowSelector, Trace
from attnscope.errors import InputError, OutOfRangeError

LayerSelector = int | tuple[int, int] | Sequence[int] | str
Scaling = Literal["raw", "minmax"]


def resolve_layers(trace: Trace, layers: LayerSelector, stack: str | None = None) -> list[int]:
    """Layer indexes for ``layers``: an int, ``(first, last)`` inclusive, a list, or ``"all"``."""
    count = trace.num_layers(stack)
    if isinstance(layers, str):
        if layers == "all":
            return list(trace.captured_layers(stack))
        bounds = re.fullmatch(r"\s*(-?\d+)\s*[-:]\s*(-?\d+)\s*", layers)  # "4-7" / "4:7", inclusive
        if bounds:
            return resolve_layers(trace, (int(bounds[1]), int(bounds[2])), stack)
        try:
            return resolve_layers(trace, int(layers), stack)
        except ValueError:
            raise InputError(f"layers must be an index, a range like 4-7, or 'all'; got {layers!r}") from None
    if isinstance(layers, tuple) and len(layers) == 2:
        first, last = (trace.resolve_layer(int(x), stack) for x in layers)
        if first > last:
            raise OutOfRangeError(f"layer range {layers[0]}..{layers[1]} is empty")
        return list(range(first, last + 1))
    if isinstance(layers, int | np.integer):
        return [trace.resolve_layer(int(layers), stack)]
    chosen = [trace.resolve_layer(int(x), stack) for x in layers]
    if not chosen:
        raise OutOfRangeError(f"no layers selected (0..{count - 1})")
    return chosen


@register("attention", "attribution", "attention weights of a layer (or mean over a layer range) and head selection")
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
    name = stack or trace.default_stack
    chosen = resolve_layers(trace, layers, name)
    per_head = head if isinstance(head, str | int | np.integer) else None
    total: np.ndarray | None = None
    for layer in chosen:
        selection: HeadSelector = per_head if per_head is not None else [int(h) for h in head or []]  # type: ignore[union-attr]
        weights = trace.attention(layer, selection, rows, stack=name)
        if per_head is None:
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
