"""Per-head metrics for every layer x head, and head-type labels derived from them.

All metrics average over the query rows asked for (default: all), using only the keys each row may
attend to (for causal models: keys up to the query):

- ``entropy``: mean row entropy in nats.
- ``sparsity``: mean share of attendable keys whose weight is below ``threshold``.
- ``locality``: mean attention distance, sum_k w_qk |q - k|, in tokens.
- ``sink``: mean weight on the first token (BOS or [CLS] where there is one).
- ``previous_token``: mean weight on key q - 1 (rows q >= 1).
- ``focus_consistency``: how much weight the rows put on the head's usual focus. The usual focus is
  the most common strongest key, either as an absolute position (anchors, sinks) or as an offset
  q - k (previous-token, local heads); the metric is the mean weight on it, whichever of the two
  holds more (1 = every row puts all its weight on the same focus; a uniform head scores ~0).

- ``induction`` (separate probe, :func:`induction_scores`): on a random sequence written twice, the
  weight from a token's second occurrence to the token after its first one.

Labels, first match wins: ``induction`` (induction >= 0.3, when measured), ``previous-token``
(previous_token >= 0.5), ``sink`` (sink >= 0.5), ``local`` (locality <= 2), ``broad`` (entropy >=
0.7 x the entropy of a uniform row over half the keys), else ``mixed``.
"""

from __future__ import annotations

import numpy as np

from attnscope.capture.reads import CHUNK_ELEMENTS
from attnscope.capture.selection import RowSelector
from attnscope.capture.trace import Trace
from attnscope.progress import Progress, report

METRICS = ("entropy", "sparsity", "locality", "sink", "previous_token", "focus_consistency")


def metric_titles(threshold: float) -> dict[str, str]:
    """What each metric is called on axes and selectors (the page and the report read it from the JSON)."""
    return {
        "entropy": "entropy (nats)",
        "sparsity": f"sparsity (share of keys below {threshold:g})",
        "locality": "locality (mean distance, tokens)",
        "sink": "sink mass (first token)",
        "previous_token": "previous-token score",
        "focus_consistency": "focus consistency",
        "induction": "induction score (repeated random words)",
    }


def _row_metrics(weights: np.ndarray, query_rows: np.ndarray, threshold: float) -> dict[str, np.ndarray]:
    """Per-row values (heads, rows) for (heads, rows, key) weights; ``strongest`` is each row's argmax."""
    n_key = weights.shape[-1]
    keys = np.arange(n_key)[None, :]
    positions = query_rows[:, None]
    attendable: np.ndarray = np.asarray((weights > 0).any(axis=0))  # (rows, key): keys some head reaches (masked = 0)
    distance = np.abs(positions - keys)  # (rows, key)
    safe = np.where(weights > 0, weights, 1.0)
    below = ((weights < threshold) & attendable[None]).sum(axis=-1) / np.maximum(attendable.sum(axis=-1), 1)[None]
    previous = np.where(query_rows >= 1, weights[:, np.arange(len(query_rows)), np.maximum(query_rows - 1, 0)], np.nan)
    return {
        "entropy": -(weights * np.log(safe)).sum(axis=-1),
        "sparsity": below,
        "locality": (weights * distance[None]).sum(axis=-1),
        "sink": weights[:, :, 0],
        "previous_token": previous,
        "strongest": weights.argmax(axis=-1),
    }


def _mode(values: np.ndarray) -> int:
    found, counts = np.unique(values, return_counts=True)
    return int(found[counts.argmax()])


def _focus_weights(weights: np.ndarray, query_rows: np.ndarray, keys: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """(2, heads, rows): each row's weight on its head's modal key and on the key at its modal offset."""
    n_key = weights.shape[-1]
    rows = np.arange(len(query_rows))
    heads = np.arange(len(keys))[:, None]
    absolute = weights[heads, rows[None], keys[:, None]]  # (heads, rows)
    relative_keys = query_rows[None, :] - offsets[:, None]  # (heads, rows)
    valid = (relative_keys >= 0) & (relative_keys < n_key)
    picked = weights[heads, rows[None], np.clip(relative_keys, 0, n_key - 1)]
    return np.stack([absolute, np.where(valid, picked, 0.0)])


def head_metrics(
    trace: Trace,
    *,
    stack: str | None = None,
    rows: RowSelector = None,
    threshold: float = 0.01,
    progress: Progress | None = None,
) -> dict[str, np.ndarray]:
    """``{metric: (layers, heads) array}``; layers not captured are NaN."""
    name = trace.stack_name(stack)
    query_rows = trace.resolve_rows(rows, name)
    n_layers, n_heads = trace.num_layers(name), trace.num_heads(name)
    n_key = len(trace.key_tokens(name))
    result = {metric: np.full((n_layers, n_heads), np.nan) for metric in METRICS}
    # rows stream through in chunks: a bounded (heads, chunk, key) working set
    step = max(1, CHUNK_ELEMENTS // 8 // max(1, n_heads * n_key))  # float64 with ~8 temporaries
    chunks = [query_rows[begin : begin + step] for begin in range(0, len(query_rows), step)]
    captured = trace.captured_layers(name)
    for done, layer in enumerate(captured):
        report(progress, done, len(captured), "head metrics")
        sums = {metric: np.zeros(n_heads) for metric in ("entropy", "sparsity", "locality", "sink")}
        previous_sum, previous_count = np.zeros(n_heads), 0
        strongest = np.empty((n_heads, len(query_rows)), dtype=np.int64)
        last: np.ndarray | None = None
        for index, chunk in enumerate(chunks):
            weights = trace.attention(layer, None, rows=chunk, stack=name).astype(np.float64)
            values = _row_metrics(weights, chunk, threshold)
            for metric in sums:
                sums[metric] += values[metric].sum(axis=-1)
            previous_sum += np.nansum(values["previous_token"], axis=-1)
            previous_count += int((chunk >= 1).sum())
            strongest[:, index * step : index * step + len(chunk)] = values["strongest"]
            last = weights
        for metric, total in sums.items():
            result[metric][layer] = total / len(query_rows)
        result["previous_token"][layer] = previous_sum / previous_count if previous_count else 0.0
        modal_keys = np.array([_mode(s) for s in strongest])
        modal_offsets = np.array([_mode(query_rows - s) for s in strongest])
        focus = np.zeros((2, n_heads))
        for chunk in chunks:  # a second pass only when the rows did not fit in one chunk
            weights = (
                last if len(chunks) == 1 and last is not None else trace.attention(layer, None, rows=chunk, stack=name)
            )
            focus += _focus_weights(np.asarray(weights, dtype=np.float64), chunk, modal_keys, modal_offsets).sum(
                axis=-1
            )
        result["focus_consistency"][layer] = focus.max(axis=0) / len(query_rows)
    report(progress, len(captured), len(captured), "head metrics")
    return result


def head_labels(metrics: dict[str, np.ndarray], n_keys: int) -> list[list[str]]:
    """A label per (layer, head) from :func:`head_metrics` (rules in the module docstring)."""
    uniform = np.log(max(n_keys, 2) / 2)  # entropy of a uniform row over half the keys (causal average)
    labels: list[list[str]] = []
    for layer in range(metrics["entropy"].shape[0]):
        row: list[str] = []
        for head in range(metrics["entropy"].shape[1]):
            value = {name: float(metrics[name][layer, head]) for name in METRICS}
            induction = metrics.get("induction")
            if np.isnan(value["entropy"]):
                row.append("not captured")
            elif induction is not None and float(induction[layer, head]) >= 0.3:
                row.append("induction")
            elif value["previous_token"] >= 0.5:
                row.append("previous-token")
            elif value["sink"] >= 0.5:
                row.append("sink")
            elif value["locality"] <= 2:
                row.append("local")
            elif value["entropy"] >= 0.7 * uniform:
                row.append("broad")
            else:
                row.append("mixed")
        labels.append(row)
    return labels


def induction_scores(trace: Trace, period: int, *, stack: str | None = None) -> np.ndarray:
    """(layers, heads) mean weight that query ``q`` puts on key ``q - period + 1``, over ``q >= period``.

    Meant for a trace of a random token sequence repeated (``period`` = its length): an induction
    head attends from a token's second occurrence to the token that followed its first one.
    """
    name = trace.stack_name(stack)
    n_query = len(trace.query_tokens(name))
    if not 1 <= period < n_query:
        raise ValueError(f"period must be between 1 and {n_query - 1}")
    query_rows = np.arange(period, n_query)
    scores = np.full((trace.num_layers(name), trace.num_heads(name)), np.nan)
    for layer in trace.captured_layers(name):
        weights = trace.attention(layer, None, rows=query_rows, stack=name)  # (heads, rows, key)
        scores[layer] = weights[:, np.arange(len(query_rows)), query_rows - period + 1].mean(axis=-1)
    return scores


def metrics_json(metrics: dict[str, np.ndarray]) -> dict[str, list[list[float | None]]]:
    """``{metric: [[layers x heads]]}`` with NaN (layers not captured) as None."""
    return {
        name: [[None if np.isnan(v) else float(v) for v in row] for row in values.tolist()]
        for name, values in metrics.items()
    }
