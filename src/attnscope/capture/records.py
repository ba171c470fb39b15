"""What the ``qk`` source keeps per attention layer (numpy only); :mod:`.kernel` computes weights from it."""

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
