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
    captured = trace.captured_layers(name)
    for done, layer in enumerate(captured):
        report(progress, done, len(captured), "head metrics")
        # the rows stream through on the trace's device; only per-head sums come back
        sums = trace.head_statistics(layer, query_rows, step=step, threshold=threshold, stack=name)
        for metric in ("entropy", "sparsity", "locality", "sink"):
            result[metric][layer] = sums[metric] / len(query_rows)
        count = sums["previous_count"]
        result["previous_token"][layer] = sums["previous_token"] / count if count else 0.0
        result["focus_consistency"][layer] = sums["focus"].max(axis=0) / len(query_rows)
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
