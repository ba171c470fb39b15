"""The attention graph export (:func:`attnscope.analysis.graph.attention_graph`): queries in a column
on the left, keys on the right (the page's columns layout), an edge for every weight at least the
threshold (the heaviest ``max_edges``), width and colour by weight on a 0–1 colour bar. Options
``threshold`` and ``max_edges`` come from ``ExportOptions.method_options`` (defaults as the page's).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from attnscope.render.exports.common import Shown, selection_words, shown, view_options
from attnscope.render.exports.frame import (
    ExportOptions,
    Table,
    attention_colormap,
    colour_bar,
    finish,
    new_figure,
    token_label,
)
from attnscope.render.palette import fmt, palette

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from attnscope.analysis.graph import AttentionGraph
    from attnscope.capture.trace import Trace


def graph_of(trace: Trace, options: ExportOptions) -> tuple[Shown, AttentionGraph]:
    from attnscope.analysis.graph import DEFAULT_MAX_EDGES, DEFAULT_THRESHOLD, attention_graph

    given = view_options(options, "graph", {"threshold": DEFAULT_THRESHOLD, "max_edges": DEFAULT_MAX_EDGES})
    seen = shown(trace, options)
    graph = attention_graph(
        trace,
        layer=seen.view.layers[0],
        head=seen.view.head,
        threshold=given["threshold"],
        max_edges=int(given["max_edges"]),
        stack=seen.view.stack,
    )
    return seen, graph


def _words(seen: Shown, graph: AttentionGraph) -> str:
    kept = f"{len(graph.weights)} of {graph.above_threshold} edges ≥ {fmt(graph.threshold)}"
    return f"{selection_words(seen.view, query=False)}, {kept}"


def figure(trace: Trace, options: ExportOptions) -> Figure:
    from matplotlib.cm import ScalarMappable
    from matplotlib.collections import LineCollection
    from matplotlib.colors import Normalize

    seen, graph = graph_of(trace, options)
    queries, keys = graph.query_nodes, graph.key_nodes
    rows = max(len(queries), len(keys), 1)
    figure, axes = new_figure(9.0, min(20.0, 2.5 + 0.2 * rows))
    place_q = {q: i * (rows - 1) / max(1, len(queries) - 1) for i, q in enumerate(queries)}
    place_k = {k: i * (rows - 1) / max(1, len(keys) - 1) for i, k in enumerate(keys)}
    cmap, norm = attention_colormap(), Normalize(0.0, 1.0)
    order = graph.weights.argsort()  # the heaviest drawn last, on top
    segments = [[(0.0, place_q[int(graph.queries[i])]), (1.0, place_k[int(graph.keys[i])])] for i in order]
    colours = [cmap(norm(float(graph.weights[i]))) for i in order]
    widths = [0.5 + 4.0 * float(graph.weights[i]) for i in order]
    axes.add_collection(LineCollection(segments, colors=colours, linewidths=widths))
    ink = palette()["ink"]
    for position, y in place_q.items():
        axes.text(
            -0.02, y, f"{position} {token_label(seen.query_labels[position])}", ha="right", va="center", fontsize=7
        )
    for position, y in place_k.items():
        axes.text(1.02, y, f"{position} {token_label(seen.key_labels[position])}", ha="left", va="center", fontsize=7)
    axes.scatter([0.0] * len(place_q), list(place_q.values()), s=8, color=ink["text"])
    axes.scatter([1.0] * len(place_k), list(place_k.values()), s=8, color=ink["text"])
    axes.set_xlim(-0.35, 1.35)
    axes.set_ylim(rows - 0.5, -0.5)
    axes.set_xticks([0.0, 1.0], ["query tokens", "key tokens"], fontsize=8)
    axes.set_yticks([])
    for side in ("top", "left", "right"):
        axes.spines[side].set_visible(False)
    colour_bar(figure, ScalarMappable(norm=norm, cmap=cmap), axes, "edge weight (raw attention probability)",
               horizontal=True)  # fmt: skip
    words = _words(seen, graph)
    return finish(figure, options.title or f"Attention graph — {words}", seen.footer(words))


def table(trace: Trace, options: ExportOptions) -> Table:
    seen, graph = graph_of(trace, options)
    rows: list[list[Any]] = [
        [int(q), seen.query_labels[int(q)], int(k), seen.key_labels[int(k)], float(w)]
        for q, k, w in zip(graph.queries, graph.keys, graph.weights, strict=True)
    ]
    meta = seen.meta("graph", _words(seen, graph))
    meta["threshold"], meta["above_threshold"] = graph.threshold, graph.above_threshold
    return Table(["query", "query_token", "key", "key_token", "weight"], rows, meta)
