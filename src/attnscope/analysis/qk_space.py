"""AttentionViz's joint query–key space: one head's queries and keys as points of one space, moved
so that nearness shows what attends to what, without changing any attention weight.

For one head with queries ``q_i`` and keys ``k_j`` (post-rotary; score ``= scaling · q_i · k_j``):

1. fold the score scale in: ``q ← q·√scaling``, ``k ← k·√scaling`` (dot products are the scores);
2. **scale**: ``q ← q·s``, ``k ← k / s`` with ``s = sqrt(mean_j ‖k_j − k̄‖ / mean_i ‖q_i − q̄‖)``
   (every dot product unchanged);
3. **translate** the keys onto the queries' centroid: ``k ← k − k̄ + q̄`` (after step 2). For a
   fixed query ``q`` every score changes by the same ``q · (q̄ − k̄)``, and a softmax over the keys
   is unchanged by a constant: the attention weights are exactly those of the model.

After the transform both clouds share their centroid and lie at the same mean distance from it
(which is what ``s`` is chosen for), so a query sits near the keys it scores highly instead of the
two clouds lying apart. Several heads of a layer are transformed each on its own, then projected
together.

Projections of many points are bounded: PCA takes up to :data:`MAX_POINTS` points, t-SNE and UMAP
up to :data:`MAX_EMBED_POINTS` (their cost grows faster); beyond that, queries and keys are each
subsampled at evenly spaced positions and the answer says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

MAX_POINTS = 50_000
MAX_EMBED_POINTS = 3_000


@dataclass(frozen=True)
class JointSpace:
    queries: np.ndarray  # (query, head_dim) transformed
    keys: np.ndarray  # (key, head_dim) transformed
    scale: float  # s
    shift: np.ndarray  # (head_dim,) q̄ − k̄ added to every key after scaling


def joint_space(queries: np.ndarray, keys: np.ndarray, scaling: float = 1.0) -> JointSpace:
    """The transform of the module docstring for one head: (query, d) and (key, d) -> the same shapes."""
    root = math.sqrt(scaling)
    q = np.asarray(queries, dtype=np.float64) * root
    k = np.asarray(keys, dtype=np.float64) * root
    spread_q = float(np.linalg.norm(q - q.mean(axis=0), axis=1).mean())
    spread_k = float(np.linalg.norm(k - k.mean(axis=0), axis=1).mean())
    s = math.sqrt(spread_k / spread_q) if spread_q > 0 and spread_k > 0 else 1.0
    q, k = q * s, k / s
    shift = q.mean(axis=0) - k.mean(axis=0)
    return JointSpace(q, k + shift, s, shift)


def causal_softmax(scores: np.ndarray, query_positions: np.ndarray) -> np.ndarray:
    """(query, key) row softmax of ``scores`` over the keys at or before each query's position."""
    keys = np.arange(scores.shape[1])[None, :]
    masked = np.where(keys <= np.asarray(query_positions)[:, None], scores, -np.inf)
    top = masked.max(axis=1, keepdims=True)
    weights = np.exp(masked - top)
    return weights / weights.sum(axis=1, keepdims=True)


def even_sample(count: int, limit: int) -> np.ndarray:
    """(≤limit,) int64 indexes 0..count-1 at evenly spaced positions (all of them when count ≤ limit)."""
    if count <= limit:
        return np.arange(count, dtype=np.int64)
    return np.unique(np.linspace(0, count - 1, num=limit).round().astype(np.int64))
