"""The heatmap export: one layer's whole query × key map (a head, or the mean/max of heads), white to
the attention colour as on the page, raw weights on a fixed 0–1 colour bar.

Long inputs: a side over :data:`FIGURE_CELLS` tokens is drawn as the max over blocks of ``f × f``
tokens (a sharp head stays visible; the title says so); the table is the whole map up to
:data:`TABLE_CELLS` tokens a side, pooled the same way beyond (one row per cell, long format).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from attnscope.render.exports.common import pooled_map, selection_words, shown
from attnscope.render.exports.frame import (
    ExportOptions,
    Table,
    attention_colormap,
    finish,
    matrix,
    new_figure,
    pooled_labels,
    token_axis,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from attnscope.capture.trace import Trace

FIGURE_CELLS = 1024  # cells a side in a figure (≈ the PNG's pixels)
TABLE_CELLS = 2048  # cells a side in a table (4M rows at most)


def _pool_note(factor: int) -> str:
    return "" if factor == 1 else f" — max over blocks of {factor} × {factor} tokens"


def figure(trace: Trace, options: ExportOptions) -> Figure:
    seen = shown(trace, options)
    values, factor = pooled_map(trace, seen.view, FIGURE_CELLS)  # (cells_q, cells_k)
    side = min(14.0, 6.0 + 0.05 * values.shape[1])
    figure, axes = new_figure(side + 2.0, min(13.0, 4.0 + 0.05 * values.shape[0]))
    matrix(figure, axes, values, cmap=attention_colormap(), bar_label="attention weight (raw probability)",
           vmin=0.0, vmax=1.0)  # fmt: skip
    xnote = token_axis(axes, pooled_labels(seen.key_labels, factor), "x")
    ynote = token_axis(axes, pooled_labels(seen.query_labels, factor), "y")
    block = "" if factor == 1 else f", blocks of {factor}"
    axes.set_xlabel(f"key token{block}{xnote}")
    axes.set_ylabel(f"query token{block}{ynote}")
    words = selection_words(seen.view, query=False)
    title = options.title or f"Attention heatmap — {words}{_pool_note(factor)}"
    return finish(figure, title, seen.footer(words))


def table(trace: Trace, options: ExportOptions) -> Table:
    seen = shown(trace, options)
    values, factor = pooled_map(trace, seen.view, TABLE_CELLS)
    queries, keys = np.nonzero(np.ones_like(values, dtype=bool))  # every cell, row by row
    qlabels = pooled_labels(seen.query_labels, factor)
    klabels = pooled_labels(seen.key_labels, factor)
    rows: list[list[Any]] = [
        [int(q) * factor, qlabels[q], int(k) * factor, klabels[k], float(values[q, k])]
        for q, k in zip(queries.tolist(), keys.tolist(), strict=True)
    ]
    weight = "weight" if factor == 1 else f"max_weight_over_{factor}x{factor}_block"
    words = selection_words(seen.view, query=False) + _pool_note(factor)
    return Table(["query", "query_token", "key", "key_token", weight], rows, seen.meta("heatmap", words))
