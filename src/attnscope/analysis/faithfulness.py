"""Faithfulness: do attention, rollout, gradients and occlusion rank the same tokens first?

For every pair of methods: Spearman's ρ and Kendall's τ-b (``scipy.stats``) between their scores
over the same units, leaving out units where either score is missing (NaN: inserted special
tokens under occlusion) and, by default, units after the query (every method gives them 0 for a
causal model, which would inflate agreement). Low or negative agreement between attention and
occlusion/gradients is the signal that attention is not explanation for this prediction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass
class Agreement:
    methods: list[str]
    spearman: np.ndarray  # (methods, methods); NaN where undefined (constant scores, < 3 units)
    kendall: np.ndarray
    n_units: np.ndarray  # (methods, methods) units compared

    def to_json(self) -> dict[str, Any]:
        def plain(matrix: np.ndarray) -> list[list[float | None]]:
            return [[float(v) if np.isfinite(v) else None for v in row] for row in matrix]

        return {
            "methods": self.methods,
            "spearman": plain(self.spearman),
            "kendall": plain(self.kendall),
            "n_units": self.n_units.astype(int).tolist(),
        }


def rank_agreement(scores: dict[str, np.ndarray], include: np.ndarray | None = None) -> Agreement:
    """Pairwise rank agreement of ``{method: (units,) scores}``; ``include`` masks the units compared."""
    from scipy.stats import kendalltau, spearmanr

    names = list(scores)
    size = len(names)
    rho, tau = np.full((size, size), np.nan), np.full((size, size), np.nan)
    counts = np.zeros((size, size), dtype=np.int64)
    for i, first in enumerate(names):
        for j, second in enumerate(names):
            a, b = np.asarray(scores[first], dtype=np.float64), np.asarray(scores[second], dtype=np.float64)
            keep = np.isfinite(a) & np.isfinite(b)
            if include is not None:
                keep &= np.asarray(include, dtype=bool)
            counts[i, j] = int(keep.sum())
            if keep.sum() < 3 or np.ptp(a[keep]) == 0 or np.ptp(b[keep]) == 0:
                continue
            rho[i, j] = float(spearmanr(a[keep], b[keep]).statistic)
            tau[i, j] = float(kendalltau(a[keep], b[keep]).statistic)
    return Agreement(names, rho, tau, counts)
