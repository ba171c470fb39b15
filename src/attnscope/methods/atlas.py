"""The head atlas and the joint query–key projection of a trace: what ``attnscope atlas``,
``POST /api/atlas`` and ``POST /api/qk-projection`` give.

- :func:`head_atlas`: every captured (layer, head) as a point, from the feature matrix documented in
  :mod:`attnscope.analysis.atlas` (mean-pooled whole maps + head metrics, standardised), projected
  by PCA, t-SNE or UMAP, with each head's metrics and type label (:func:`head_labels`; no induction
  probe here: that needs the model to run again). Over :data:`EXACT_TOKENS` query tokens both read
  :data:`SAMPLED_ROWS` evenly spaced query rows (all keys of each) instead of every row: the metrics
  average over those rows and each pooled cell is the mean over the rows read in its block.
- :func:`qk_projection`: one layer's queries and keys (one head, or every head, each transformed on
  its own) in AttentionViz's joint space (:mod:`attnscope.analysis.qk_space`), projected together.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from attnscope.analysis.atlas import ATLAS_GRID, Projection, check_projection, check_seed, head_features, project
from attnscope.analysis.heads import METRICS, head_labels, head_metrics
from attnscope.analysis.qk_space import MAX_EMBED_POINTS, MAX_POINTS, even_sample, joint_space
from attnscope.analysis.rollout import self_attention_stack
from attnscope.errors import InputError
from attnscope.progress import Progress, adapt, scaled

if TYPE_CHECKING:
    from attnscope.capture.trace import Trace

EXACT_TOKENS = 2048
SAMPLED_ROWS = 256


@dataclass
class HeadAtlas:
    trace: Trace
    stack: str
    projection: Projection
    layers: list[int]  # per point
    heads: list[int]  # per point
    labels: list[str]  # per point: the head-type label
    metrics: dict[str, list[float]]  # {metric: per point}
    grid: list[int]  # (cells_q, cells_k) of the pooled maps in the features
    factor: int  # tokens per pooled cell side
    sampled_rows: int | None = None  # None: every query row read; else how many (long inputs)
    provenance: dict[str, Any] = field(default_factory=dict)


def head_atlas(
    trace: Trace,
    *,
    projection: str = "pca",
    seed: int = 0,
    perplexity: float | None = None,
    n_neighbors: int | None = None,
    stack: str | None = None,
    threshold: float = 0.01,
    progress: Any = None,
) -> HeadAtlas:
    """Every captured head of ``trace`` projected to 2-D (see the module docstring)."""
    from attnscope.capture.overview import pooled_maps
    from attnscope.models.provenance import derive, utc_now

    started_at = utc_now()
    name = trace.stack_name(stack)
    captured = trace.captured_layers(name)
    n_heads = trace.num_heads(name)
    check_seed(seed)  # refused before any work, as are the projection's parameters
    check_projection(projection, len(captured) * n_heads, perplexity, n_neighbors)
    report: Progress | None = adapt(progress)
    n_query = len(trace.query_tokens(name))
    rows = even_sample(n_query, SAMPLED_ROWS) if n_query > EXACT_TOKENS else None  # long inputs: rows sampled
    metrics = head_metrics(
        trace,
        stack=name,
        rows=None if rows is None else rows.tolist(),
        threshold=threshold,
        progress=scaled(report, 0, 45, 100, "head metrics"),
    )
    labels = head_labels(metrics, len(trace.key_tokens(name)))
    per_block = None if rows is None else max(1, SAMPLED_ROWS // ATLAS_GRID)
    pooled = pooled_maps(
        trace,
        ATLAS_GRID,
        pool="mean",
        stack=name,
        rows_per_block=per_block,
        progress=scaled(report, 45, 45, 100, "maps"),
    )
    maps = pooled.maps.reshape(-1, *pooled.maps.shape[2:])  # (layers · heads, cells_q, cells_k)
    per_head = {metric: metrics[metric][captured].reshape(-1) for metric in METRICS}  # (layers · heads,)
    features = head_features(maps, per_head)
    shown = project(features, projection, seed=seed, perplexity=perplexity, n_neighbors=n_neighbors)
    if report is not None:
        report(100, 100, "head atlas")
    options = {"projection": projection, **shown.params, "stack": name, "threshold": float(threshold)}
    options["sampled_rows"] = None if rows is None else len(rows)
    return HeadAtlas(
        trace=trace,
        stack=name,
        projection=shown,
        layers=[layer for layer in captured for _ in range(n_heads)],
        heads=[head for _ in captured for head in range(n_heads)],
        labels=[labels[layer][head] for layer in captured for head in range(n_heads)],
        metrics={metric: [float(v) for v in values] for metric, values in per_head.items()},
        grid=list(pooled.maps.shape[2:]),
        factor=pooled.factor,
        sampled_rows=options["sampled_rows"],
        provenance=derive(trace.provenance, started_at=started_at, method="head-atlas", method_options=options),
    )


@dataclass
class QKProjection:
    trace: Trace
    stack: str
    layer: int
    heads: list[int]
    projection: Projection
    kinds: np.ndarray  # (points,) 0 = query, 1 = key
    positions: np.ndarray  # (points,) token index
    point_heads: np.ndarray  # (points,) head of each point
    scales: list[float]  # s per head
    total: int  # points before subsampling
    limit: int  # the most points this projection takes
    exact: bool  # False: soft-cap or position bias also shape the scores (dot products are not all)
    provenance: dict[str, Any] = field(default_factory=dict)


def parse_qk(spec: str | int) -> tuple[int, str | int]:
    """``LAYER`` or ``LAYER:HEAD`` (``HEAD`` an index or ``all``) -> (layer, head)."""
    text = str(spec).strip()
    layer_text, _, head_text = text.partition(":")
    try:
        layer = int(layer_text)
        head: str | int = "all" if head_text in ("", "all") else int(head_text)
    except ValueError:
        raise InputError(f"--qk must look like LAYER or LAYER:HEAD (HEAD a number or all); got {text!r}") from None
    return layer, head


def point_quotas(limit: int, n_heads: int) -> np.ndarray:
    """(heads, 2) how many queries and keys each head may bring so that all of them come to at most
    ``limit``: an equal share each, the remainder spread evenly over the (head, kind) pairs; with
    fewer than two points per head some heads bring none."""
    pairs = 2 * n_heads
    quotas = np.full(pairs, limit // pairs, dtype=np.int64)
    quotas[even_sample(pairs, limit % pairs)[: limit % pairs]] += 1
    return quotas.reshape(n_heads, 2)


def qk_projection(
    trace: Trace,
    layer: int,
    head: str | int = "all",
    *,
    projection: str = "pca",
    seed: int = 0,
    perplexity: float | None = None,
    n_neighbors: int | None = None,
    max_points: int | None = None,
    stack: str | None = None,
) -> QKProjection:
    """Queries and keys of ``layer`` (one head or ``"all"``) in the joint space, projected to 2-D."""
    from attnscope.capture.overview import layer_vectors
    from attnscope.models.provenance import derive, utc_now

    started_at = utc_now()
    check_seed(seed)
    name = self_attention_stack(trace, stack, "encoder")  # seq2seq by default: the input text's encoder
    if name == "cross":
        raise InputError("the joint query–key space is for self-attention (queries and keys of the same tokens)")
    index = trace.resolve_layer(layer, name)
    heads = list(range(trace.num_heads(name))) if head == "all" else trace.resolve_heads(int(head), name)
    ceiling = MAX_POINTS if projection == "pca" else MAX_EMBED_POINTS
    limit = ceiling if max_points is None else max_points
    if not 2 <= limit <= ceiling:
        raise InputError(f"max_points must be from 2 to {ceiling:,} for {projection}; got {limit}")
    vectors = layer_vectors(trace, index, heads, stack=name)
    n_query, n_key = vectors.queries.shape[1], vectors.keys.shape[1]
    total = len(heads) * (n_query + n_key)
    quotas = point_quotas(limit, len(heads))  # (heads, 2) queries and keys per head; they sum to ≤ limit
    rows = [(even_sample(n_query, int(q)), even_sample(n_key, int(k))) for q, k in quotas]
    check_projection(projection, sum(len(q) + len(k) for q, k in rows), perplexity, n_neighbors)
    blocks, kinds, positions, owners, scales = [], [], [], [], []
    for offset, h in enumerate(heads):
        space = joint_space(vectors.queries[offset], vectors.keys[offset], vectors.scaling)
        scales.append(space.scale)
        query_rows, key_rows = rows[offset]
        blocks += [space.queries[query_rows], space.keys[key_rows]]
        kinds += [np.zeros(len(query_rows), np.int8), np.ones(len(key_rows), np.int8)]
        positions += [vectors.query_positions[query_rows], key_rows]
        owners.append(np.full(len(query_rows) + len(key_rows), h, np.int64))
    shown = project(np.concatenate(blocks), projection, seed=seed, perplexity=perplexity, n_neighbors=n_neighbors)
    options = {"projection": projection, **shown.params, "layer": index, "head": head, "max_points": limit}
    return QKProjection(
        trace=trace,
        stack=name,
        layer=index,
        heads=heads,
        projection=shown,
        kinds=np.concatenate(kinds),
        positions=np.concatenate(positions).astype(np.int64),
        point_heads=np.concatenate(owners),
        scales=scales,
        total=total,
        limit=limit,
        exact=vectors.exact,
        provenance=derive(trace.provenance, started_at=started_at, method="qk-projection", method_options=options),
    )
