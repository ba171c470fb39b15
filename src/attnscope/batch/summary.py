"""Per-head distributions of every metric across the corpus: ``summary.parquet`` of a complete atlas.

For each (layer, head, metric): how many prompts have a finite value (``count``), their mean, standard
deviation (population, ddof=0), minimum, 5/25/50/75/95th percentiles (numpy's linear interpolation)
and maximum, in float64 from the stored float32 values; and a histogram over the metric's bin edges,
which are shared by every head of that metric (``HISTOGRAM_BINS`` equal bins from the corpus minimum
to the corpus maximum over all heads, stored in atlas.json as ``bins``), so histograms of two heads
compare bin for bin.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from attnscope.batch import layout


def metric_cube(folder: Path, index: dict[str, Any], metric: str) -> np.ndarray:
    """(prompts, layers, heads) values of ``metric`` over the atlas's shards; NaN where none."""
    import pyarrow.parquet as pq

    n_prompts = int(index["corpus"]["prompts"])
    n_layers, n_heads = int(index["model"]["num_layers"]), int(index["model"]["num_heads"])
    cube = np.full((n_prompts, n_layers, n_heads), np.nan, dtype=np.float32)
    for shard in index["shards"]:
        table = pq.read_table(folder / shard["files"]["heads"], columns=["prompt_index", "layer", "head", metric])
        cube[
            table["prompt_index"].to_numpy(),
            table["layer"].to_numpy().astype(np.int64),
            table["head"].to_numpy().astype(np.int64),
        ] = table[metric].to_numpy(zero_copy_only=False)
    return cube


def bin_edges(values: np.ndarray, bins: int = layout.HISTOGRAM_BINS) -> np.ndarray:
    """(bins + 1,) equal-width edges from the finite minimum to the maximum of ``values`` (a constant
    metric gets one unit-wide range around its value, so it still falls in a bin)."""
    finite = values[np.isfinite(values)].astype(np.float64)
    if finite.size == 0:
        return np.linspace(0.0, 1.0, bins + 1)
    low, high = float(finite.min()), float(finite.max())
    if low == high:
        low, high = low - 0.5, high + 0.5
    return np.linspace(low, high, bins + 1)


def summarise(folder: Path, index: dict[str, Any]) -> tuple[Any, dict[str, list[float]]]:
    """The summary table (:func:`attnscope.batch.layout.summary_schema`) and the bins per metric."""
    import pyarrow as pa

    n_layers, n_heads = int(index["model"]["num_layers"]), int(index["model"]["num_heads"])
    columns: dict[str, list[Any]] = {name: [] for name in layout.summary_schema().names}
    bins: dict[str, list[float]] = {}
    for metric in layout.HEAD_METRICS:
        cube = metric_cube(folder, index, metric).astype(np.float64)  # (prompts, layers, heads)
        edges = bin_edges(cube)
        bins[metric] = edges.tolist()
        for layer in range(n_layers):
            for head in range(n_heads):
                values = cube[:, layer, head]
                values = values[np.isfinite(values)]  # (count,)
                columns["layer"].append(layer)
                columns["head"].append(head)
                columns["metric"].append(metric)
                columns["count"].append(int(values.size))
                empty = values.size == 0
                columns["mean"].append(None if empty else float(values.mean()))
                columns["std"].append(None if empty else float(values.std()))
                columns["min"].append(None if empty else float(values.min()))
                for name, share in layout.SUMMARY_QUANTILES.items():
                    columns[name].append(None if empty else float(np.quantile(values, share)))
                columns["max"].append(None if empty else float(values.max()))
                columns["histogram"].append(np.histogram(values, bins=edges)[0].astype(np.int64).tolist())
    return pa.table(columns, schema=layout.summary_schema()), bins
