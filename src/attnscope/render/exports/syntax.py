"""Export of syntax (``POST /api/syntax``, ``syntax --json``): Clark et al. (2019)'s test of which
attention head tracks each dependency relation.

Left and middle: the accuracy of every layer × head over all relations, in both directions
(dependent → head and head → dependent), on the sequential scale 0 … 1, the best head outlined —
the page's accuracy map. Right: per relation, the best head's accuracy in each direction beside the
best fixed-offset baseline, as the page's table. The table: one row per relation and direction with
its count, best head, accuracy and the baseline.
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
    finish,
    matrix,
    new_figure,
    number_formatter,
    sequential_colormap,
)
from attnscope.render.palette import hex_colour, palette, rgb

VIEW = "syntax"
TITLE = "syntax (heads per dependency relation)"
ANSWER_KINDS = ("syntax",)
DIRECTIONS = ("dependent_to_head", "head_to_dependent")
DIRECTION_NAMES = {"dependent_to_head": "dependent → head", "head_to_dependent": "head → dependent"}


def _best(row: Mapping[str, Any], direction: str, where: str) -> tuple[int, int, float]:
    best = row.get(direction)
    if not isinstance(best, Mapping):
        raise InputError(f"{where}.{direction} of the {VIEW} answer is missing")
    return (fields.index(best.get("layer"), where, VIEW), fields.index(best.get("head"), where, VIEW),
            fields.number(best.get("accuracy"), f"{where}.{direction}.accuracy", VIEW))  # fmt: skip


def _relations(answer: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    answer = fields.expect(answer, ANSWER_KINDS, VIEW)
    if answer.get("accuracy") is None:
        raise InputError(
            f"this {VIEW} answer has no dependency parse (words and parts of speech only): nothing to chart"
        )
    overall = fields.field(answer, "overall", Mapping, VIEW)
    return [*fields.objects(fields.field(answer, "relations", list, VIEW), "relations", VIEW), overall]


def figure(answer: Mapping[str, Any], options: ExportOptions) -> Any:
    """The accuracy maps over all relations and the best heads per relation against the baseline."""
    from matplotlib.patches import Rectangle

    relations = _relations(answer)
    accuracy = fields.field(answer, "accuracy", Mapping, VIEW)
    maps = [
        fields.numbers(fields.mapping(accuracy, direction).get("all"), f"accuracy.{direction}.all", VIEW, 2)
        for direction in DIRECTIONS
    ]  # each (layers, heads)
    fig, grid = new_figure(15.0, 3.0 + 0.32 * max(len(relations), len(maps[0])), 1, 3, width_ratios=[1.0, 1.0, 1.3])
    overall = relations[-1]
    for axes, direction, values in zip(grid[0, :2], DIRECTIONS, maps, strict=True):
        matrix(fig, axes, values, cmap=sequential_colormap(), bar_label="accuracy", vmin=0, vmax=1)
        fields.annotate_cells(axes, values, limit=150)
        layer, head, _ = _best(overall, direction, "overall")
        axes.add_patch(Rectangle((head - 0.5, layer - 0.5), 1, 1, fill=False, edgecolor="#ff00aa", linewidth=1.6))
        from matplotlib.ticker import MaxNLocator

        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.yaxis.set_major_locator(MaxNLocator(integer=True))
        axes.set_xlabel("head")
        axes.set_ylabel("layer")
        axes.set_title(f"{DIRECTION_NAMES[direction]}, all relations (best outlined)", fontsize=9)
    _bars(grid[0, 2], relations)
    count = overall.get("count")
    shown = f"{len(relations) - 1} relations, {count} dependencies"
    return finish(fig, fields.title(options, f"Syntax: which head tracks each relation ({shown})"),
                  fields.footer(answer, shown))  # fmt: skip


def _bars(axes: Any, relations: list[Mapping[str, Any]]) -> None:
    names = [str(row.get("relation", "?")) for row in relations]
    places = np.arange(len(relations))
    colours = (hex_colour(rgb("attention")), hex_colour(rgb("prediction")))
    for offset, direction, colour in zip((-0.27, 0.0), DIRECTIONS, colours, strict=True):
        values = [_best(row, direction, f"relation {name}")[2] for row, name in zip(relations, names, strict=True)]
        axes.barh(places + offset, values, height=0.27, color=colour, label=f"best head, {DIRECTION_NAMES[direction]}")
    baseline = []
    for row, name in zip(relations, names, strict=True):
        block = row.get("baseline")
        baseline.append(fields.number(block.get("accuracy") if isinstance(block, Mapping) else None,
                                      f"relation {name}.baseline", VIEW))  # fmt: skip
    axes.barh(places + 0.27, baseline, height=0.27, color=palette()["ink"]["muted"], label="best fixed offset")
    axes.set_yticks(places, [f"{n} ({row.get('count')})" for n, row in zip(names, relations, strict=True)], fontsize=7)
    axes.invert_yaxis()
    axes.set_xlim(0, 1)
    axes.xaxis.set_major_formatter(number_formatter())
    axes.set_xlabel("accuracy")
    axes.set_ylabel("relation (count)")
    axes.legend(fontsize=6.5, loc="lower right")
    axes.set_title("best head per relation against the baseline", fontsize=9)


def table(answer: Mapping[str, Any], options: ExportOptions) -> Table:
    """One row per relation (``all`` last) and direction: count, best layer, head, accuracy, and the
    best fixed offset with its accuracy."""
    rows = []
    for row in _relations(answer):
        name = str(row.get("relation", "?"))
        baseline = fields.mapping(row, "baseline")
        for direction in DIRECTIONS:
            layer, head, accuracy = _best(row, direction, f"relation {name}")
            rows.append([name, direction, row.get("count"), layer, head, accuracy, baseline.get("offset"),
                         baseline.get("accuracy")])  # fmt: skip
    columns = ["relation", "direction", "count", "layer", "head", "accuracy", "baseline_offset", "baseline_accuracy"]
    return Table(columns, rows, fields.meta(VIEW, "best head per relation", answer))
