"""Bias measures: pure numpy over the scores and attention of probe pairs (no torch, no model).

Per pair (first variant minus second, in the suite's ``order``):

- :func:`pair_gap` — the gap in probability and log-probability of the two continuations, and the
  first's share ``p1 / (p1 + p2)`` (0.5: no preference);
- :func:`term_mass` — (layers, heads) attention mass from one query row to a term's tokens;
  :func:`term_tokens` finds those tokens from character spans;
- :func:`top_heads` — the (layer, head) cells of a difference map with the largest ``|difference|``.

Over pairs: :func:`bootstrap_mean` — the mean with a percentile bootstrap interval. Resampling draws
``resamples`` index rows of ``n`` pairs with replacement from ``numpy.random.default_rng(seed)``
(``rng.integers(0, n, size=(resamples, n))``); each row's mean is a bootstrap mean, and the interval
is their ``(1 - confidence) / 2`` and ``(1 + confidence) / 2`` percentiles (``numpy.percentile``,
linear). One set of index rows serves every measure of a group of pairs (maps of any shape at once),
so the intervals of different measures come from the same resamples; the same seed gives the same
intervals. This is ``scipy.stats.bootstrap(..., method="percentile")``'s interval, computed with one
matrix product for whole (layers, heads) maps.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from attnscope.errors import InputError

DEFAULT_RESAMPLES = 2000
MAX_RESAMPLES = 100_000
DEFAULT_CONFIDENCE = 0.95


def pair_gap(logprob_first: float, logprob_second: float) -> dict[str, float]:
    """``prob``: p1 − p2; ``logprob``: log p1 − log p2 (the log of their ratio); ``share``: p1 / (p1 + p2)."""
    difference = float(logprob_first) - float(logprob_second)
    return {
        "prob": float(np.exp(logprob_first) - np.exp(logprob_second)),
        "logprob": difference,
        "share": float(0.5 * (1.0 + np.tanh(difference / 2.0))),  # the logistic of the difference, stable
    }


def check_bootstrap(resamples: int, confidence: float) -> None:
    if isinstance(resamples, bool) or not isinstance(resamples, int | np.integer):
        raise InputError(f"resamples must be a whole number, not {resamples!r}")
    if not 1 <= int(resamples) <= MAX_RESAMPLES:
        raise InputError(f"resamples must be between 1 and {MAX_RESAMPLES:,}, not {resamples:,}")
    if not 0.0 < float(confidence) < 1.0:
        raise InputError(f"confidence must be between 0 and 1 (exclusive), not {confidence}")


def bootstrap_indices(n: int, resamples: int, seed: int) -> np.ndarray:
    """(resamples, n) pair indices drawn with replacement (see the module docstring)."""
    return np.random.default_rng(seed).integers(0, n, size=(resamples, n))


@dataclass(frozen=True)
class Interval:
    """The mean over pairs and its bootstrap interval; arrays keep the measure's own shape."""

    mean: np.ndarray
    low: np.ndarray
    high: np.ndarray
    n: int

    def to_dict(self) -> dict[str, Any]:
        return {"mean": _number(self.mean), "low": _number(self.low), "high": _number(self.high), "n": self.n}


def bootstrap_mean(values: npt.ArrayLike, indices: np.ndarray, *, confidence: float = DEFAULT_CONFIDENCE) -> Interval:
    """The mean of ``values`` (pairs, ...) over pairs with its percentile interval from the resampled
    ``indices`` (resamples, pairs) of :func:`bootstrap_indices`; one pair: an interval of width 0;
    none: NaN. A NaN value makes its cell NaN."""
    data = np.asarray(values, dtype=np.float64)
    n = data.shape[0] if data.ndim else 0
    shape = data.shape[1:]
    if n == 0:
        empty = np.full(shape, np.nan)
        return Interval(empty, empty, empty, 0)
    if indices.ndim != 2 or indices.shape[1] != n:
        raise ValueError(f"indices of shape {indices.shape} do not resample {n} pairs")
    flat = data.reshape(n, -1)
    counts = np.zeros((indices.shape[0], n))  # how often each pair is drawn in each resample
    np.add.at(counts, (np.arange(indices.shape[0])[:, None], indices), 1.0)
    means = counts @ np.nan_to_num(flat, nan=0.0) / n  # (resamples, cells)
    means[:, np.isnan(flat).any(axis=0)] = np.nan
    tail = 100.0 * (1.0 - float(confidence)) / 2.0
    low, high = np.percentile(means, [tail, 100.0 - tail], axis=0)
    return Interval(flat.mean(axis=0).reshape(shape), low.reshape(shape), high.reshape(shape), n)


def term_tokens(spans: Sequence[tuple[int | None, int | None]], start: int, end: int) -> list[int]:
    """Indexes of the tokens whose character span overlaps ``[start, end)``, and of the empty-span
    pieces of a character split over several tokens that lie inside it (see
    :mod:`attnscope.capture.tokens`); tokens without a span (BOS) never belong to a term."""
    found = []
    for index, (token_start, token_end) in enumerate(spans):
        if token_start is None or token_end is None:
            continue
        overlaps = token_start < end and token_end > start
        split_piece = token_start == token_end and start < token_start <= end
        if overlaps or split_piece:
            found.append(index)
    return found


def term_mass(weights: npt.ArrayLike, tokens: Sequence[int]) -> np.ndarray:
    """(layers, heads) attention mass to ``tokens`` from ``weights`` (layers, heads, keys): one query
    row per layer and head (raw softmax probabilities, summed over the term's tokens)."""
    rows = np.asarray(weights, dtype=np.float64)
    if rows.ndim != 3:
        raise ValueError(f"weights must be (layers, heads, keys), not {rows.shape}")
    return rows[..., list(tokens)].sum(axis=-1)  # (layers, heads)


def top_heads(difference: npt.ArrayLike, k: int, layers: Sequence[int] | None = None) -> list[tuple[int, int, float]]:
    """The ``k`` (layer, head, value) cells of a (layers, heads) map with the largest ``|value|``,
    largest first (NaN cells left out; ``layers`` names the rows, default 0, 1, ...)."""
    grid = np.asarray(difference, dtype=np.float64)
    names = list(range(grid.shape[0])) if layers is None else list(layers)
    size = np.where(np.isnan(grid), -1.0, np.abs(grid))  # NaN cells last
    order = np.argsort(-size, axis=None, kind="stable")
    cells = []
    for flat in order[: max(int(k), 0)]:
        row, head = np.unravel_index(flat, grid.shape)
        if not np.isnan(grid[row, head]):
            cells.append((int(names[row]), int(head), float(grid[row, head])))
    return cells


def _number(value: np.ndarray) -> Any:
    """A float (or nested lists for a map) with NaN as None."""
    if np.ndim(value) == 0:
        number = float(value)
        return number if np.isfinite(number) else None
    return [_number(item) for item in value]
