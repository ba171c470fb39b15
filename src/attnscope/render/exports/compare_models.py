"""Export of two models compared (``POST /api/compare/models``, ``compare TEXT --model A --model B
--json``): the difference A − B of one matched layer on the units both tokenizations cover, the
per-layer head-metric means of A beside B's matched layer, and one attribution method on both.

Top: the difference map of the chosen layer pair (``--layer``: a layer of A the answer holds;
default its last pair), signed colours symmetric around 0, and the attribution of each unit by A
and by B, each divided by its own largest |score| (two models' raw scales differ), with their rank
agreement in the title. Bottom: entropy, sink mass and previous-token score per layer of A, A
against B's matched layer. The table: the difference map's cells of every layer pair, with A's and
B's weights.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from attnscope.errors import InputError, OutOfRangeError
from attnscope.render.exports import fields
from attnscope.render.exports.frame import (
    ExportOptions,
    Table,
    finish,
    matrix,
    new_figure,
    number_formatter,
    signed_colormap,
    token_axis,
)
from attnscope.render.palette import fmt, hex_colour, palette, rgb

VIEW = "compare-models"
TITLE = "two models compared"
ANSWER_KINDS = ("model_comparison",)
METRICS_DRAWN = ("entropy", "sink", "previous_token")


class Read:
    """The checked parts of a model comparison."""

    def __init__(self, answer: Mapping[str, Any]) -> None:
        answer = fields.expect(answer, ANSWER_KINDS, VIEW)
        self.units = fields.token_texts(fields.field(answer, "units", list, VIEW), "units", VIEW)
        n = len(self.units)
        match = fields.field(answer, "layer_match", Mapping, VIEW)
        self.pairs = fields.pairs_of(match.get("pairs"), "layer_match.pairs", VIEW)
        models = fields.objects(fields.field(answer, "models", list, VIEW), "models", VIEW)
        if len(models) != 2:
            raise InputError(f"models of the {VIEW} answer are not two")
        difference = fields.field(answer, "difference", Mapping, VIEW)
        self.maps = [self._maps(m.get("maps"), f"models[{i}].maps", n) for i, m in enumerate(models)]
        self.difference = self._maps(difference.get("maps"), "difference.maps", n)  # (pairs, units, units)
        metrics = fields.field(fields.field(answer, "head_metrics", Mapping, VIEW), "metrics", Mapping, VIEW)
        self.metrics = {
            name: (fields.numbers(value.get("a"), f"{name}.a", VIEW), fields.numbers(value.get("b"), f"{name}.b", VIEW))
            for name, value in metrics.items()
            if isinstance(value, Mapping)
        }
        self.attribution = answer.get("attribution") if isinstance(answer.get("attribution"), Mapping) else None
        self.specs = [
            str(fields.mapping(answer, "model").get("spec", "A")),
            str(fields.mapping(answer, "model_b").get("spec", "B")),
        ]

    def _maps(self, value: Any, what: str, n: int) -> np.ndarray:
        maps = fields.numbers(value, what, VIEW, 3) if self.pairs else np.zeros((0, n, n))
        if maps.shape != (len(self.pairs), n, n):
            raise InputError(f"{what} of the {VIEW} answer is not one {n} × {n} map per layer pair")
        return maps

    def pair(self, layer: int) -> int:
        """The index of the pair whose layer of A is ``layer`` (-1: the last pair)."""
        if not self.pairs:
            raise InputError(f"the {VIEW} answer holds no layer pair")
        if layer == -1:
            return len(self.pairs) - 1
        for position, (layer_a, _) in enumerate(self.pairs):
            if layer_a == layer:
                return position
        held = ", ".join(str(a) for a, _ in self.pairs)
        raise OutOfRangeError(f"layer {layer} of A is not in this comparison (its layers of A: {held})")


def figure(answer: Mapping[str, Any], options: ExportOptions) -> Any:
    """Difference map and attribution above three head metrics by layer."""
    read = Read(answer)
    chosen = read.pair(options.layer)
    layer_a, layer_b = read.pairs[chosen]
    fig, grid = new_figure(max(13.0, fields.width_for(3 * len(read.units), 0.2, 4.0)), 9.0, 2, 3,
                           height_ratios=[1.6, 1.0])  # fmt: skip
    spec = grid[0, 0].get_gridspec()
    for axes in grid[0, :2]:
        axes.remove()
    heat = fig.add_subplot(spec[0, :2])
    values = read.difference[chosen]
    bound = float(np.nanmax(np.abs(values))) if values.size and np.isfinite(values).any() else 1.0
    matrix(fig, heat, values, cmap=signed_colormap(), bar_label="A − B", vmin=-(bound or 1.0), vmax=bound or 1.0)
    heat.set_xlabel(f"key unit{token_axis(heat, read.units, 'x')}")
    heat.set_ylabel(f"query unit{token_axis(heat, read.units, 'y')}")
    heat.set_title(f"difference map A − B: layer {layer_a} of A, layer {layer_b} of B (mean of heads)", fontsize=9)
    _attribution(grid[0, 2], read)
    for axes, name in zip(grid[1], METRICS_DRAWN, strict=True):
        _metric(axes, read, name)
    shown = f"A {read.specs[0]} vs B {read.specs[1]} on {len(read.units)} units"
    return finish(fig, fields.title(options, f"Two models compared: {shown}"), fields.footer(answer, shown))


def _attribution(axes: Any, read: Read) -> None:
    block = read.attribution
    if block is None or block.get("method") in (None, "none"):
        axes.text(0.5, 0.5, "no attribution method was run", ha="center", va="center", fontsize=9)
        axes.set_axis_off()
        return
    sides = [fields.numbers(block.get(side), f"attribution.{side}", VIEW) for side in ("a", "b")]
    if any(len(side) != len(read.units) for side in sides):
        raise InputError(f"attribution of the {VIEW} answer has not one score per unit")
    places = np.arange(len(read.units))
    for offset, values, colour, name in (
        (-0.2, sides[0], rgb("attention"), "A"),
        (0.2, sides[1], rgb("prediction"), "B"),
    ):
        peak = float(np.nanmax(np.abs(values), initial=0.0)) or 1.0
        axes.barh(places + offset, np.nan_to_num(values / peak), height=0.4, color=hex_colour(colour),
                  label=f"{name}: {read.specs[0 if name == 'A' else 1]}")  # fmt: skip
    axes.set_yticks(places, [fields.short(u, 12) for u in read.units], fontsize=7)
    axes.invert_yaxis()
    axes.axvline(0, color=palette()["ink"]["muted"], linewidth=0.6)
    axes.set_xlabel(f"{block.get('method')} score ÷ its largest |score|")
    axes.set_ylabel("unit")
    axes.xaxis.set_major_formatter(number_formatter())
    axes.legend(fontsize=6.5, loc="lower right")
    rho = block.get("spearman")
    axes.set_title(f"attribution, Spearman ρ {fmt(rho if isinstance(rho, int | float) else None)}", fontsize=9)


def _metric(axes: Any, read: Read, name: str) -> None:
    if name not in read.metrics:
        axes.set_axis_off()
        return
    a, b = read.metrics[name]
    axes.plot(range(len(a)), a, marker="o", color=hex_colour(rgb("attention")), label=f"A {read.specs[0]}")
    axes.plot(
        range(len(b)), b, marker="s", color=hex_colour(rgb("prediction")), label=f"B {read.specs[1]} (matched layer)"
    )
    axes.set_xlabel("layer of A")
    axes.set_ylabel(name.replace("_", " "))
    axes.yaxis.set_major_formatter(number_formatter())
    from matplotlib.ticker import MaxNLocator

    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.legend(fontsize=6.5)
    axes.set_title(f"{name.replace('_', ' ')}, mean over heads", fontsize=9)


def table(answer: Mapping[str, Any], options: ExportOptions) -> Table:
    """One row per (layer pair, query unit, key unit): A's weight, B's, and A − B."""
    read = Read(answer)
    rows = [
        [
            read.pairs[p][0],
            read.pairs[p][1],
            q,
            read.units[q],
            k,
            read.units[k],
            _cell(read.maps[0][p, q, k]),
            _cell(read.maps[1][p, q, k]),
            _cell(read.difference[p, q, k]),
        ]
        for p in range(len(read.pairs))
        for q in range(len(read.units))
        for k in range(len(read.units))
    ]
    columns = ["layer_a", "layer_b", "query", "query_unit", "key", "key_unit", "a", "b", "difference"]
    return Table(columns, rows, fields.meta(VIEW, f"A {read.specs[0]} − B {read.specs[1]}", answer))


def _cell(value: float) -> float | None:
    return None if np.isnan(value) else float(value)
