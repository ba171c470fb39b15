"""The flow Sankey export (:func:`attnscope.analysis.sankey.flow_sankey`): columns are the layer
boundaries from the input (left) to the last layer's output (right); a node's height is a chosen
token's share of the prediction at that boundary, a band what one layer carries from a token to
another (attention rollout); the tokens not chosen are one grey "other" node per column. Options
``top`` and ``residual`` come from ``ExportOptions.method_options`` (defaults as the page's).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from attnscope.render.exports.common import Shown, head_words, shown, view_options
from attnscope.render.exports.frame import ExportOptions, Table, finish, new_figure, token_label
from attnscope.render.palette import fmt, hex_colour, palette, sequential

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from attnscope.analysis.sankey import FlowSankey
    from attnscope.capture.trace import Trace

GAP = 0.02  # vertical gap between nodes, in shares of the prediction
WIDTH = 0.12  # a node's width, in columns


def flow_of(trace: Trace, options: ExportOptions) -> tuple[Shown, FlowSankey]:
    from attnscope.analysis.sankey import DEFAULT_TOP, flow_sankey

    given = view_options(options, "sankey", {"top": DEFAULT_TOP, "residual": 0.5})
    seen = shown(trace, options, one_head=False)
    flow = flow_sankey(
        trace,
        query=seen.view.query,
        top=int(given["top"]),
        head=options.head,
        residual=float(given["residual"]),
        stack=options.stack,
    )
    return seen, flow


def _names(seen: Shown, flow: FlowSankey) -> list[str]:
    return [f"{p} {token_label(seen.query_labels[p])}" for p in flow.tokens] + ["other"]


def _words(flow: FlowSankey) -> str:
    return (
        f"{flow.stack} stack, {head_words(flow.head)}, prediction at {flow.target}, residual share {fmt(flow.residual)}"
    )


def figure(trace: Trace, options: ExportOptions) -> Figure:
    from matplotlib.patches import PathPatch, Rectangle
    from matplotlib.path import Path

    seen, flow = flow_of(trace, options)
    boundaries, groups = flow.values.shape
    names = _names(seen, flow)
    colours = [hex_colour(sequential(0.1 + 0.8 * i / max(1, groups - 2))) for i in range(groups - 1)]
    colours.append(palette()["ink"]["line"])
    figure, axes = new_figure(min(16.0, 4.0 + 1.2 * boundaries), 6.5)
    tops = np.zeros((boundaries, groups))  # where each node starts, top down
    for boundary in range(boundaries):
        y = 0.0
        for group in range(groups):
            tops[boundary, group] = y
            y += flow.values[boundary, group] + GAP
    for boundary in range(boundaries):
        for group in range(groups):
            axes.add_patch(Rectangle((boundary - WIDTH / 2, tops[boundary, group]), WIDTH, flow.values[boundary, group],
                                     color=colours[group]))  # fmt: skip
    for layer in range(boundaries - 1):  # F[layer][above, below]: from (layer, below) to (layer + 1, above)
        out_used = tops[layer].copy()
        in_used = tops[layer + 1].copy()
        for below in range(groups):
            for above in range(groups):
                value = float(flow.links[layer, above, below])
                if value <= 0:
                    continue
                x0, x1 = layer + WIDTH / 2, layer + 1 - WIDTH / 2
                y0, y1 = out_used[below], in_used[above]
                middle = (x0 + x1) / 2
                vertices = [(x0, y0), (middle, y0), (middle, y1), (x1, y1), (x1, y1 + value), (middle, y1 + value),
                            (middle, y0 + value), (x0, y0 + value), (x0, y0)]  # fmt: skip
                codes = [Path.MOVETO, Path.CURVE4, Path.CURVE4, Path.CURVE4, Path.LINETO, Path.CURVE4, Path.CURVE4,
                         Path.CURVE4, Path.CLOSEPOLY]  # fmt: skip
                axes.add_patch(PathPatch(Path(vertices, codes), facecolor=colours[below], alpha=0.45, linewidth=0))
                out_used[below] += value
                in_used[above] += value
    for group in range(groups):
        axes.text(-WIDTH, tops[0, group] + flow.values[0, group] / 2, f"{names[group]}  {fmt(flow.values[0, group])}",
                  ha="right", va="center", fontsize=7)  # fmt: skip
        last = boundaries - 1
        axes.text(last + WIDTH, tops[last, group] + flow.values[last, group] / 2, names[group], ha="left", va="center",
                  fontsize=7)  # fmt: skip
    axes.set_xlim(-1.6, boundaries + 0.6)
    axes.set_ylim(float(tops[:, -1].max() + flow.values[:, -1].max()) + GAP, -GAP)
    axes.set_xticks(range(boundaries), ["input"] + [f"after L{layer}" for layer in range(boundaries - 1)], fontsize=7)
    axes.set_xlabel("layer boundary (residual stream)")
    axes.set_ylabel("share of the prediction (node height; each column sums to 1)")
    axes.set_yticks([])
    words = _words(flow)
    target = f"«{token_label(seen.query_labels[flow.target])}»"
    return finish(
        figure,
        options.title or f"Attention flow (Sankey) into the prediction at {flow.target} {target}",
        seen.footer(words),
    )


def table(trace: Trace, options: ExportOptions) -> Table:
    seen, flow = flow_of(trace, options)
    names = _names(seen, flow)
    rows: list[list[Any]] = []
    boundaries, groups = flow.values.shape
    for boundary in range(boundaries):
        for group in range(groups):
            rows.append(["node", boundary, names[group], None, None, float(flow.values[boundary, group])])
    for layer in range(boundaries - 1):
        for above in range(groups):
            for below in range(groups):
                rows.append(
                    ["link", layer, names[below], layer + 1, names[above], float(flow.links[layer, above, below])]
                )
    columns = ["kind", "boundary", "token", "to_boundary", "to_token", "share"]
    return Table(columns, rows, seen.meta("sankey", _words(flow)))
