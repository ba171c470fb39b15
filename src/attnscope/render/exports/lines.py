"""The head view export (the page's Lines view, after bertviz's): the query token on the left, every
key token on the right, a line from the query to each key whose width and opacity grow with the
raw attention weight, in the attention colour, with a 0–1 colour bar. Tokens over
:data:`MAX_LINES` keys: the lines of the :data:`MAX_LINES` heaviest keys (said in the title).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from attnscope.render.exports.common import attention_rows, selection_words, shown
from attnscope.render.exports.frame import (
    ExportOptions,
    Table,
    attention_colormap,
    colour_bar,
    finish,
    new_figure,
    token_axis,
    token_label,
)
from attnscope.render.palette import palette

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from attnscope.capture.trace import Trace

MAX_LINES = 2000


def figure(trace: Trace, options: ExportOptions) -> Figure:
    from matplotlib.cm import ScalarMappable
    from matplotlib.collections import LineCollection
    from matplotlib.colors import Normalize

    seen = shown(trace, options)
    query = seen.view.query
    weights = attention_rows(trace, seen.view, np.array([query]))[0]  # (key,)
    n_key = len(weights)
    keep = np.argsort(-weights, kind="stable")[:MAX_LINES]
    keep = keep[weights[keep] > 0]
    height = min(20.0, 2.5 + 0.16 * n_key)
    figure, axes = new_figure(9.0, height)
    cmap = attention_colormap()
    norm = Normalize(0.0, 1.0)
    query_y = query * (n_key - 1) / max(1, len(seen.query_labels) - 1) if n_key > 1 else 0.0
    segments = [[(0.0, query_y), (1.0, float(key))] for key in keep]
    red = cmap(1.0)[:3]  # the attention colour; opacity = weight (as the page draws the lines)
    colours = [(*red, float(max(0.06, min(1.0, weights[key])))) for key in keep]
    widths = [0.4 + 4.0 * float(weights[key]) for key in keep]
    axes.add_collection(LineCollection(segments, colors=colours, linewidths=widths))
    ink = palette()["ink"]
    axes.scatter([0.0], [query_y], s=30, color=ink["text"], zorder=3)
    axes.set_xlim(-0.05, 1.05)
    axes.set_ylim(n_key - 0.5, -0.5)
    axes.set_xticks([0.0, 1.0], [f"query {query} «{token_label(seen.query_labels[query])}»", "key tokens"], fontsize=8)
    note = token_axis(axes, seen.key_labels, "y")
    axes.yaxis.tick_right()
    axes.set_ylabel(f"key token{note}")
    axes.yaxis.set_label_position("right")
    for side in ("top", "left", "bottom"):
        axes.spines[side].set_visible(False)
    colour_bar(figure, ScalarMappable(norm=norm, cmap=cmap), axes, "attention weight (raw probability; line width too)",
               horizontal=True)  # fmt: skip
    words = selection_words(seen.view)
    more = "" if len(keep) == np.count_nonzero(weights) else f" — the {len(keep)} heaviest of {n_key} keys"
    return finish(figure, options.title or f"Head view — {words}{more}", seen.footer(words))


def table(trace: Trace, options: ExportOptions) -> Table:
    seen = shown(trace, options)
    query = seen.view.query
    weights = attention_rows(trace, seen.view, np.array([query]))[0]
    rows = [[query, seen.query_labels[query], key, seen.key_labels[key], float(w)] for key, w in enumerate(weights)]
    words = selection_words(seen.view)
    return Table(["query", "query_token", "key", "key_token", "weight"], rows, seen.meta("lines", words))
