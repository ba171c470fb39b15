"""Statistics of one attention row (a probability distribution over key tokens)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class RowStats:
    sum: float
    max: float
    argmax: int  # key index of the largest weight
    entropy_nats: float  # -sum w log w over w > 0
    mass90_tokens: int  # fewest tokens whose weights add up to 90 % of the row's sum

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def row_stats(weights: npt.ArrayLike) -> RowStats:
    """Statistics of a (key,) row of non-negative weights."""
    row = np.asarray(weights, dtype=np.float64)
    if row.ndim != 1 or row.size == 0:
        raise ValueError("row_stats needs a non-empty 1-D row")
    total = float(row.sum())
    positive = row[row > 0]
    ordered = np.sort(row)[::-1]
    reached = np.cumsum(ordered) >= 0.9 * total - 1e-12
    return RowStats(
        sum=total,
        max=float(row.max()),
        argmax=int(row.argmax()),
        entropy_nats=float(-(positive * np.log(positive)).sum()),
        mass90_tokens=int(np.argmax(reached)) + 1 if total > 0 else 0,
    )


def without_special(weights: npt.ArrayLike, special: npt.ArrayLike) -> np.ndarray:
    """The row with special tokens set to 0 and the rest renormalised to sum to 1 (all 0 if nothing is left)."""
    row = np.where(np.asarray(special, dtype=bool), 0.0, np.asarray(weights, dtype=np.float64))
    total = row.sum()
    return row / total if total > 0 else row


def display_rows(weights: npt.ArrayLike, special: npt.ArrayLike) -> dict[str, np.ndarray]:
    """The (key,) row on every basis the page can show, each renormalised to sum to 1 (see
    :func:`without_special`): ``raw``; ``without_special``; ``without_first``, the first key left out
    (it often soaks up attention it does not use: an attention sink); ``without_first_and_special``."""
    row = np.asarray(weights, dtype=np.float64)
    special = np.asarray(special, dtype=bool)
    first = np.zeros(row.shape, dtype=bool)
    first[:1] = True
    return {
        "raw": row,
        "without_special": without_special(row, special),
        "without_first": without_special(row, first),
        "without_first_and_special": without_special(row, special | first),
    }
