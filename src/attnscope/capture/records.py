"""What the ``qk`` source keeps per attention layer, and the mask rule it recomputes from (numpy only)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class LayerRecord:
    """What one attention call left behind for one (stack, layer); tensors for batch item 0."""

    query: np.ndarray  # (heads, query, head_dim) float32, post-rotary
    key: np.ndarray  # (kv_heads, key, head_dim) float32, post-rotary
    query_positions: np.ndarray  # (query,) int64: absolute position of each query row
    scaling: float
    softcap: float | None
    causal: bool
    window: int | None
    mask_id: int | None = None  # index into QKRecorder.masks when the rule does not explain the mask
    bias_id: int | None = None  # index into QKRecorder.biases (additive position bias, e.g. T5)


def rule_allowed(record: LayerRecord, query_rows: np.ndarray, n_key: int, first_key: int = 0) -> np.ndarray:
    """(rows, keys first_key..n_key-1) bool from the record's causal/window rule."""
    positions = record.query_positions[query_rows][:, None]
    keys = np.arange(first_key, n_key)[None, :]
    allowed = np.ones((len(query_rows), n_key - first_key), dtype=bool)
    if record.causal:
        allowed &= keys <= positions
    if record.window is not None:
        allowed &= (positions - keys) < record.window
    return allowed
