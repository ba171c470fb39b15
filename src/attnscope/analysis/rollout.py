"""Attention rollout (Abnar & Zuidema 2020): attention propagated through the residual stream.

Each layer's head-averaged attention ``A`` is mixed with the identity for the residual connection,
``Â = r·I + (1 − r)·A`` (r = 0.5 in the paper), rows renormalised, and the layers multiplied:
``R = Â_{L-1} · … · Â_1 · Â_0``. ``R[q, k]`` is how much input token ``k`` reaches position ``q``
after the last layer. It needs every layer's full map: memory O(N²), time O(L·N³).
"""

from __future__ import annotations

import numpy as np

from attnscope.capture.trace import Trace
from attnscope.errors import InputError


def residual_attention(trace: Trace, layer: int, stack: str, residual: float, head: str) -> np.ndarray:
    """(query, key) ``r·I + (1 − r)·A`` of one layer, rows renormalised."""
    attention = trace.attention(layer, head, stack=stack).astype(np.float64)
    mixed = residual * np.eye(attention.shape[0]) + (1 - residual) * attention
    return mixed / mixed.sum(axis=-1, keepdims=True)


def self_attention_stack(trace: Trace, stack: str | None, prefer: str) -> str:
    """``stack`` checked, or with None the model's default — except that an encoder–decoder's default,
    cross-attention, becomes ``prefer`` (``decoder`` for the prediction, ``encoder`` for the input text):
    the methods that need self-attention then work with default settings instead of refusing."""
    name = trace.stack_name(stack)
    if stack is None and name == "cross" and prefer in trace.stacks():
        return prefer
    return name


def residual_layers(trace: Trace, stack: str | None, residual: float, method: str) -> tuple[str, range]:
    """The stack and its layers for a method that walks every self-attention layer (rollout, flow)."""
    name = trace.stack_name(stack)
    if name == "cross":
        raise InputError(f"{method} runs over a self-attention stack (encoder or decoder), not cross-attention")
    if not 0.0 <= residual <= 1.0:
        raise InputError("residual must be between 0 and 1")
    layers = range(trace.num_layers(name))
    missing = [layer for layer in layers if layer not in trace.captured_layers(name)]
    if missing:
        raise InputError(f"{method} needs every layer; layers {missing} were not captured")
    return name, layers


def attention_rollout(
    trace: Trace, *, stack: str | None = None, residual: float = 0.5, head: str = "mean"
) -> np.ndarray:
    """(query, key) rollout over all layers of ``stack`` (self-attention stacks only)."""
    name, layers = residual_layers(trace, stack, residual, "rollout")
    rollout: np.ndarray | None = None
    for layer in layers:
        mixed = residual_attention(trace, layer, name, residual, head)  # (query, key)
        rollout = mixed if rollout is None else mixed @ rollout
    assert rollout is not None
    return rollout


def rollout_rows(
    trace: Trace, rows: list[int], *, stack: str | None = None, residual: float = 0.5, head: str = "mean"
) -> np.ndarray:
    """(rows, key) the ``rows`` of :func:`attention_rollout`, from the last layer down: the rows times
    each layer's ``Â`` in turn (time O(L·rows·N²) instead of O(L·N³); one layer's map at a time)."""
    name, layers = residual_layers(trace, stack, residual, "rollout")
    picked: np.ndarray | None = None
    for layer in reversed(layers):
        mixed = residual_attention(trace, layer, name, residual, head)  # (query, key)
        picked = mixed[rows] if picked is None else picked @ mixed
    assert picked is not None
    return picked
