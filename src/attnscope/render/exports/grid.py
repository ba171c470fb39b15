"""The all-heads export: the query token's attention row in every layer × head, one row of cells per
(layer, head) over the key tokens (the page's grid of thumbnails, as one matrix), white to the
attention colour on a fixed 0–1 colour bar. Over :data:`~.frame.MAX_AXIS_TOKENS` keys, the max over
blocks of keys (said in the axis title).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from attnscope.render.exports.common import shown
from attnscope.render.exports.frame import (
    ExportOptions,
    Table,
    attention_colormap,
    finish,
    matrix,
    new_figure,
    ordinal,
    pool_axis,
    pool_vector,
    pooled_labels,
    token_axis,
    token_label,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from attnscope.capture.trace import Trace

FIGURE_KEYS = 1024  # key cells in the figure


def rows_of(trace: Trace, options: ExportOptions) -> tuple[Any, list[tuple[int, int]], np.ndarray]:
    """The selection, the (layer, head) of each row and the (layers · heads, key) weights of the query."""
    seen = shown(trace, options, one_head=False)
    name, query = seen.view.stack, seen.view.query
    pairs: list[tuple[int, int]] = []
    blocks: list[np.ndarray] = []
    for layer in trace.captured_layers(name):
        weights = trace.attention(layer, None, rows=[query], stack=name)  # (heads, 1, key)
        blocks.append(np.asarray(weights[:, 0, :], dtype=np.float64))
        pairs.extend((layer, head) for head in range(weights.shape[0]))
    return seen, pairs, np.concatenate(blocks, axis=0)


def figure(trace: Trace, options: ExportOptions) -> Figure:
    seen, pairs, values = rows_of(trace, options)
    factor = pool_axis(values.shape[1], FIGURE_KEYS)
    if factor > 1:
        values = np.stack([pool_vector(row, factor) for row in values])
    figure, axes = new_figure(min(16.0, 6.0 + 0.05 * values.shape[1]), min(16.0, 3.0 + 0.09 * len(pairs)))
    matrix(figure, axes, values, cmap=attention_colormap(), bar_label="attention weight (raw probability)",
           vmin=0.0, vmax=1.0)  # fmt: skip
    note = token_axis(axes, pooled_labels(seen.key_labels, factor), "x")
    step = max(1, -(-len(pairs) // 60))
    ticks = list(range(0, len(pairs), step))
    axes.set_yticks(ticks, [f"L{pairs[i][0]} H{pairs[i][1]}" for i in ticks], fontsize=6)
    block = "" if factor == 1 else f", max over blocks of {factor}"
    axes.set_xlabel(f"key token{block}{note}")
    axes.set_ylabel("layer, head" + ("" if step == 1 else f" (every {ordinal(step)} labelled)"))
    query = seen.view.query
    words = f"{seen.view.stack} stack, every layer and head, query {query}"
    title = (
        options.title
        or f"All heads — attention of query {query} «{token_label(seen.query_labels[query])}» in every layer × head"
    )
    return finish(figure, title, seen.footer(words))


def table(trace: Trace, options: ExportOptions) -> Table:
    seen, pairs, values = rows_of(trace, options)
    rows = [
        [layer, head, key, seen.key_labels[key], float(values[index, key])]
        for index, (layer, head) in enumerate(pairs)
        for key in range(values.shape[1])
    ]
    words = f"{seen.view.stack} stack, every layer and head, query {seen.view.query}"
    return Table(["layer", "head", "key", "key_token", "weight"], rows, seen.meta("grid", words))
