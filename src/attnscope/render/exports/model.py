"""The model view export (after bertviz's): every layer × head as a thumbnail of its whole attention
map, drawn as one mosaic (rows: layers, columns: heads), white to the attention colour on a fixed
0–1 colour bar. Maps are pooled by :func:`attnscope.capture.overview.pooled_maps` to at most
:data:`THUMB` cells a side (the max over blocks of ``f × f`` tokens, said in the title).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from attnscope.render.exports.common import Shown, shown
from attnscope.render.exports.frame import ExportOptions, Table, attention_colormap, finish, matrix, new_figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from attnscope.capture.overview import PooledMaps
    from attnscope.capture.trace import Trace

THUMB = 48  # cells a side of each thumbnail
EXACT_TOKENS = 2048  # longer inputs: each block's cells estimated from evenly spaced query rows
SAMPLED_ROWS = 1024  # about this many query rows read per map then


def maps_of(trace: Trace, options: ExportOptions) -> tuple[Shown, PooledMaps]:
    from attnscope.capture.overview import pool_factor, pooled_maps

    seen = shown(trace, options, one_head=False)
    n_query = len(trace.query_tokens(seen.view.stack))
    cells = -(-n_query // pool_factor(n_query, len(trace.key_tokens(seen.view.stack)), THUMB))
    sampled = max(1, SAMPLED_ROWS // cells) if n_query > EXACT_TOKENS else None
    return seen, pooled_maps(trace, THUMB, pool="max", stack=seen.view.stack, rows_per_block=sampled)


def _words(seen: Shown, maps: PooledMaps) -> str:
    pooled = "" if maps.factor == 1 else f", max over blocks of {maps.factor} × {maps.factor} tokens"
    if maps.rows_per_block is not None:
        pooled += f" (estimated from {maps.rows_per_block} evenly spaced query rows per block)"
    return f"{seen.view.stack} stack, {maps.shape[0]} × {maps.shape[1]} tokens{pooled}"


def figure(trace: Trace, options: ExportOptions) -> Figure:
    seen, maps = maps_of(trace, options)
    layers, heads, height, width = maps.maps.shape
    gap = max(1, height // 12)
    mosaic = np.full((layers * (height + gap) - gap, heads * (width + gap) - gap), np.nan)
    for row in range(layers):
        for column in range(heads):
            top, left = row * (height + gap), column * (width + gap)
            mosaic[top : top + height, left : left + width] = maps.maps[row, column]
    figure, axes = new_figure(min(16.0, 3.0 + 0.9 * heads), min(18.0, 2.0 + 0.9 * layers))
    cmap = attention_colormap().with_extremes(bad=(0.82, 0.84, 0.87))  # the gaps in the ink's line colour
    matrix(figure, axes, mosaic, cmap=cmap, bar_label="attention weight (raw probability)", vmin=0.0, vmax=1.0)
    axes.set_xticks(
        [c * (width + gap) + (width - 1) / 2 for c in range(heads)], [str(h) for h in range(heads)], fontsize=7
    )
    rows = [r * (height + gap) + (height - 1) / 2 for r in range(layers)]
    axes.set_yticks(rows, [str(layer) for layer in maps.layers], fontsize=7)
    axes.set_xlabel("head (each thumbnail: key tokens →)")
    axes.set_ylabel("layer (each thumbnail: query tokens ↓)")
    words = _words(seen, maps)
    title = options.title or f"Model view — every layer × head, whole attention maps ({words})"
    return finish(figure, title, seen.footer(words))


def table(trace: Trace, options: ExportOptions) -> Table:
    seen, maps = maps_of(trace, options)
    factor = maps.factor
    rows = [
        [layer, head, q * factor, k * factor, float(maps.maps[index, head, q, k])]
        for index, layer in enumerate(maps.layers)
        for head in range(maps.maps.shape[1])
        for q in range(maps.maps.shape[2])
        for k in range(maps.maps.shape[3])
    ]
    weight = "weight" if factor == 1 else f"max_weight_over_{factor}x{factor}_block"
    return Table(["layer", "head", "query", "key", weight], rows, seen.meta("model", _words(seen, maps)))
