"""Export of the head atlas (``POST /api/atlas``, ``atlas --json``) and of one layer's joint
query–key space (``POST /api/qk-projection``, ``atlas --qk --json``), as the Atlas view draws them.

Head atlas: every head a point of the projection, drawn twice side by side — coloured by layer
(the sequential palette, with its colour bar) and by head type (the palette's label colours, with a
legend) — the page's two colourings. Query–key space: queries (●) and keys (■) of one layer,
coloured query/key and by token position (colour bar). Axis titles say the projection (PCA: the
share of variance of each component). The table has one row per point with its coordinates (and,
for heads, the six head metrics).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from attnscope.errors import InputError
from attnscope.render.exports import fields
from attnscope.render.exports.frame import (
    ExportOptions,
    Table,
    colour_bar,
    finish,
    new_figure,
    number_formatter,
    sequential_colormap,
)
from attnscope.render.palette import fmt_prob, hex_colour, label_colours, palette, rgb

VIEW = "atlas"
TITLE = "head atlas"
ANSWER_KINDS = RESULTS = ("head-atlas", "qk-projection")
METHOD_NAMES = {"pca": "PCA", "tsne": "t-SNE", "umap": "UMAP"}
LABEL_AT_MOST = 64  # heads named "layer.head" beside their point up to this many
RASTER_ABOVE = 4000  # points drawn as one image inside an SVG/PDF above this many (text and axes stay vector)


def _axis_titles(projection: Any) -> tuple[str, str]:
    if not isinstance(projection, Mapping) or not isinstance(projection.get("method"), str):
        raise InputError(f"the answer has no usable 'projection' for the {VIEW} export")
    method = projection["method"]
    variance = projection.get("explained_variance")
    if method == "pca" and isinstance(variance, list) and len(variance) >= 2:
        shares = fields.numbers(variance[:2], "projection.explained_variance", VIEW)
        first, second = (
            f"component {n} ({fmt_prob(float(s))} of variance)" for n, s in zip((1, 2), shares, strict=True)
        )
        return first, second
    name = METHOD_NAMES.get(method, method)
    return f"{name} component 1", f"{name} component 2"


def _points(answer: Mapping[str, Any]) -> np.ndarray:
    points = fields.numbers(fields.field(answer, "points", list, VIEW), "points", VIEW, 2, null=False)
    if points.size and points.shape[1] != 2:
        raise InputError(f"points of the {VIEW} answer are not (x, y) pairs")
    return points.reshape(-1, 2)


def _same_length(answer: Mapping[str, Any], n: int, *keys: str) -> None:
    for key in keys:
        if len(fields.field(answer, key, list, VIEW)) != n:
            raise InputError(f"{key} of the {VIEW} answer has not one entry per point ({n})")


def _heads(answer: Mapping[str, Any]) -> tuple[np.ndarray, list[int], list[int], list[str]]:
    points = _points(answer)
    _same_length(answer, len(points), "layers", "heads", "labels")
    layers = [fields.index(v, "layers", VIEW) for v in answer["layers"]]
    heads = [fields.index(v, "heads", VIEW) for v in answer["heads"]]
    labels = fields.strings(answer["labels"], "labels", VIEW)
    return points, layers, heads, labels


def _qk(answer: Mapping[str, Any]) -> tuple[np.ndarray, list[str], list[int], list[int], list[str]]:
    points = _points(answer)
    _same_length(answer, len(points), "kinds", "positions", "point_heads")
    kinds = fields.strings(answer["kinds"], "kinds", VIEW)
    if any(kind not in ("q", "k") for kind in kinds):
        raise InputError(f"kinds of the {VIEW} answer are not all 'q' or 'k'")
    positions = [fields.index(v, "positions", VIEW) for v in answer["positions"]]
    heads = [fields.index(v, "point_heads", VIEW) for v in answer["point_heads"]]
    tokens = fields.strings(fields.field(answer, "tokens", list, VIEW), "tokens", VIEW)
    if any(not 0 <= p < len(tokens) for p in positions):
        raise InputError(f"positions of the {VIEW} answer point outside its tokens")
    return points, kinds, positions, heads, tokens


def figure(answer: Mapping[str, Any], options: ExportOptions) -> Any:
    """The atlas scatter (or the query–key scatter) in two colourings, side by side."""
    answer = fields.expect(answer, RESULTS, VIEW)
    x_title, y_title = _axis_titles(answer.get("projection"))
    fig, grid = new_figure(14.0, 6.4, 1, 2)
    left, right = grid[0]
    if answer["result"] == "head-atlas":
        default = _heads_figure(fig, left, right, answer)
    else:
        default = _qk_figure(fig, left, right, answer)
    for axes in (left, right):
        axes.set_xlabel(x_title)
        axes.set_ylabel(y_title)
        axes.xaxis.set_major_formatter(number_formatter())
        axes.yaxis.set_major_formatter(number_formatter())
        axes.grid(color=palette()["ink"]["line"], linewidth=0.4)
    return finish(fig, fields.title(options, default), fields.footer(answer, default))


def _heads_figure(fig: Any, left: Any, right: Any, answer: Mapping[str, Any]) -> str:
    points, layers, heads, labels = _heads(answer)
    n_layers = max(layers, default=0) + 1
    image = left.scatter(points[:, 0], points[:, 1], c=layers, cmap=sequential_colormap(), vmin=0,
                         vmax=max(1, n_layers - 1), s=36, edgecolors="#333333", linewidths=0.4)  # fmt: skip
    bar = colour_bar(fig, image, left, "layer")
    from matplotlib.ticker import MaxNLocator

    bar.ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    left.set_title("coloured by layer", fontsize=9)
    colours = label_colours()
    for label in sorted(set(labels), key=lambda name: list(colours).index(name) if name in colours else 99):
        chosen = [i for i, name in enumerate(labels) if name == label]
        right.scatter(points[chosen, 0], points[chosen, 1], color=colours.get(label, "#ffffff"), s=36,
                      edgecolors="#333333", linewidths=0.4, label=f"{label} ({len(chosen)})")  # fmt: skip
    right.legend(title="head type", fontsize=7, title_fontsize=8, loc="best")
    right.set_title("coloured by head type", fontsize=9)
    if len(points) <= LABEL_AT_MOST:
        for axes in (left, right):
            for (x, y), layer, head in zip(points, layers, heads, strict=True):
                axes.annotate(f"{layer}.{head}", (x, y), fontsize=5.5, xytext=(3, 2), textcoords="offset points")
    method = METHOD_NAMES.get(str(answer["projection"]["method"]), "?")
    stack = answer.get("stack") or "decoder"
    return f"Head atlas: {len(points)} heads ({stack}) by {method} of their pooled maps and metrics"


def _qk_figure(fig: Any, left: Any, right: Any, answer: Mapping[str, Any]) -> str:
    points, kinds, positions, _, tokens = _qk(answer)
    query_colour, key_colour = hex_colour(rgb("attention")), hex_colour(rgb("prediction"))
    for kind, marker, colour, name in (("q", "o", query_colour, "queries"), ("k", "s", key_colour, "keys")):
        chosen = [i for i, k in enumerate(kinds) if k == kind]
        left.scatter(points[chosen, 0], points[chosen, 1], marker=marker, color=colour, s=14, alpha=0.8,
                     label=f"{name} ({len(chosen)})", rasterized=len(points) > RASTER_ABOVE)  # fmt: skip
    left.legend(fontsize=7, loc="best")
    left.set_title("queries ● and keys ■", fontsize=9)
    last = max(1, len(tokens) - 1)
    for kind, marker in (("q", "o"), ("k", "s")):
        chosen = [i for i, k in enumerate(kinds) if k == kind]
        image = right.scatter(points[chosen, 0], points[chosen, 1], marker=marker, s=14, cmap=sequential_colormap(),
                              c=[positions[i] for i in chosen], vmin=0, vmax=last,
                              rasterized=len(points) > RASTER_ABOVE)  # fmt: skip
    colour_bar(fig, image, right, "token position")
    right.set_title("coloured by token position", fontsize=9)
    if len(points) <= 2 * LABEL_AT_MOST:
        for (x, y), position, kind in zip(points, positions, kinds, strict=True):
            right.annotate(fields.short(tokens[position], 8), (x, y), fontsize=5, xytext=(2, 2),
                           textcoords="offset points", color=query_colour if kind == "q" else key_colour)  # fmt: skip
    layer = answer.get("layer")
    heads = fields.listing(answer, "heads")
    method = METHOD_NAMES.get(str(answer["projection"]["method"]), "?")
    return f"Queries and keys of layer {layer}, heads {', '.join(map(str, heads))}: joint space by {method}"


def table(answer: Mapping[str, Any], options: ExportOptions) -> Table:
    """One row per point: head atlas (layer, head, label, x, y, metrics), or q/k (kind, head,
    position, token, x, y)."""
    answer = fields.expect(answer, RESULTS, VIEW)
    if answer["result"] == "head-atlas":
        points, layers, heads, labels = _heads(answer)
        metrics = fields.field(answer, "metrics", Mapping, VIEW)
        names = list(metrics)
        values = [fields.numbers(metrics[name], f"metrics.{name}", VIEW) for name in names]
        if any(len(v) != len(points) for v in values):
            raise InputError(f"metrics of the {VIEW} answer have not one value per head")
        rows = [
            [layers[i], heads[i], labels[i], float(points[i, 0]), float(points[i, 1]), *(_cell(v[i]) for v in values)]
            for i in range(len(points))
        ]
        shown = "head atlas; x: {}, y: {}".format(*_axis_titles(answer.get("projection")))
        return Table(["layer", "head", "label", "x", "y", *names], rows, fields.meta(VIEW, shown, answer))
    points, kinds, positions, point_heads, tokens = _qk(answer)
    rows = [
        [kinds[i], point_heads[i], positions[i], tokens[positions[i]], float(points[i, 0]), float(points[i, 1])]
        for i in range(len(points))
    ]
    x_title, y_title = _axis_titles(answer.get("projection"))
    shown = f"queries and keys of layer {answer.get('layer')}; x: {x_title}, y: {y_title}"
    return Table(["kind", "head", "position", "token", "x", "y"], rows, fields.meta(VIEW, shown, answer))


def _cell(value: float) -> float | None:
    return None if np.isnan(value) else float(value)
