"""The attention score kernel: every read of a ``qk`` trace computes its weights here, and only here.

From a layer's post-rotary queries and keys (:class:`attnscope.capture.records.LayerRecord`) it
computes, batched over heads, exactly what the model's attention computed:

- scores ``q · k × scaling`` with the model's own scale (never assumed to be ``head_dim ** -0.5``);
- grouped KV heads: query head ``h`` reads key head ``h // (heads / kv_heads)``;
- tanh soft-capping (Gemma 2), then an additive position bias (T5);
- the mask: causal and sliding-window rules, or the stored mask a rule could not explain;
- one softmax, which also gives each row's log-sum-exp (its normaliser), so that any block of a
  row can later be computed from its own cells: ``w = exp(score − lse)``.

Fully masked rows have weights 0 and a log-sum-exp of −inf. Pure numpy (float32).
"""

from __future__ import annotations

import numpy as np

from attnscope.capture.records import LayerRecord


def rule_allowed(record: LayerRecord, query_rows: np.ndarray, n_key: int, first_key: int = 0) -> np.ndarray:
    """(rows, keys first_key..n_key-1) bool from the record's causal and sliding-window rule."""
    positions = record.query_positions[query_rows][:, None]
    keys = np.arange(first_key, n_key)[None, :]
    allowed = np.ones((len(query_rows), n_key - first_key), dtype=bool)
    if record.causal:
        allowed &= keys <= positions
    if record.window is not None:
        allowed &= (positions - keys) < record.window
    return allowed


def allowed(record: LayerRecord, masks: list[np.ndarray], query_rows: np.ndarray, cols: slice) -> np.ndarray:
    """(rows, cols) bool: where each query row may attend (one mask for every head)."""
    first, last = cols.start or 0, cols.stop
    if record.mask_id is not None:
        return np.asarray(masks[record.mask_id][query_rows, first:last], dtype=bool)
    return rule_allowed(record, query_rows, last, first)


def causal_end(record: LayerRecord, query_rows: np.ndarray) -> int:
    """Keys past this index are masked for every row of ``query_rows`` (the whole key range when no
    rule says so): lets a causal row chunk skip the keys after its last position."""
    n_key = int(record.key.shape[1])
    if record.mask_id is None and record.causal and len(query_rows):
        return min(n_key, int(record.query_positions[query_rows].max()) + 1)
    return n_key


def scores(
    record: LayerRecord,
    heads: np.ndarray,
    query_rows: np.ndarray,
    cols: slice,
    *,
    masks: list[np.ndarray],
    biases: list[np.ndarray],
) -> np.ndarray:
    """(heads, rows, cols) float32 pre-softmax scores; masked cells are −inf."""
    heads = np.asarray(heads, dtype=np.int64)
    n_rep = record.query.shape[0] // record.key.shape[0]
    query = record.query[heads][:, query_rows]  # (heads, rows, head_dim)
    key = record.key[heads // n_rep, cols]  # (heads, cols, head_dim)
    values = np.matmul(query, key.transpose(0, 2, 1)) * np.float32(record.scaling)
    if record.softcap is not None:
        cap = np.float32(record.softcap)
        values = np.tanh(values / cap) * cap
    if record.bias_id is not None:
        values = values + biases[record.bias_id][heads][:, query_rows, cols]
    mask = allowed(record, masks, query_rows, cols)
    return np.where(mask[None], values, np.float32(-np.inf)).astype(np.float32, copy=False)


def softmax(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row softmax of (..., key) scores and each row's log-sum-exp; fully masked rows give 0 and −inf."""
    top = values.max(axis=-1, keepdims=True)
    top = np.where(np.isfinite(top), top, np.float32(0.0)).astype(np.float32)
    weights = np.exp(values - top)
    total = weights.sum(axis=-1, keepdims=True)
    with np.errstate(divide="ignore"):
        lse = np.where(total > 0, top + np.log(total), -np.inf)[..., 0].astype(np.float32)
    return np.divide(weights, total, out=np.zeros_like(weights), where=total > 0), lse


def weights_from_lse(values: np.ndarray, lse: np.ndarray) -> np.ndarray:
    """Weights of a block of (..., rows, cols) scores from the rows' log-sum-exp (..., rows)."""
    norm = lse[..., None]
    finite = np.isfinite(norm)
    with np.errstate(invalid="ignore", over="ignore"):
        weights = np.exp(values - np.where(finite, norm, np.float32(0.0)))
    return np.where(finite & np.isfinite(values), weights, np.float32(0.0)).astype(np.float32, copy=False)
