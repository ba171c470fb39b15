"""Export of method agreement (``POST /api/agreement``, ``agreement --json``): every token
attribution method's scores of the same units side by side, and their rank agreement.

Top: methods × units, each method's raw scores divided by its own largest |score| (methods' scales
differ by orders of magnitude) in the page's signed colours, the raw score written in each cell.
Below: the Spearman ρ and Kendall τ-b matrices between methods (−1 … 1, signed colours), as the
page's two tables. The table holds the raw scores (one row per unit) and both matrices.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from attnscope.errors import InputError
from attnscope.render.exports import fields
from attnscope.render.exports.frame import ExportOptions, Table, finish, matrix, new_figure, signed_colormap, token_axis

VIEW = "agreement"
TITLE = "method agreement (attribution matrix)"
ANSWER_KINDS = ("agreement",)


def _read(answer: Mapping[str, Any]) -> tuple[list[str], list[str], np.ndarray, dict[str, np.ndarray]]:
    """(methods, unit texts, scores (methods, units), {statistic: (methods, methods)})."""
    answer = fields.expect(answer, ANSWER_KINDS, VIEW)
    agreement = fields.field(answer, "agreement", Mapping, VIEW)
    methods = fields.strings(agreement.get("methods"), "agreement.methods", VIEW)
    units = fields.token_texts(fields.field(answer, "units", list, VIEW), "units", VIEW)
    results = fields.field(answer, "methods", Mapping, VIEW)
    rows = []
    for name in methods:
        result = results.get(name)
        if not isinstance(result, Mapping):
            raise InputError(f"the {VIEW} answer lists method {name!r} but has no result for it")
        scores = fields.numbers(result.get("scores"), f"methods.{name}.scores", VIEW)
        if len(scores) != len(units):
            raise InputError(f"methods.{name}.scores of the {VIEW} answer has not one score per unit ({len(units)})")
        rows.append(scores)
    statistics = {}
    for statistic in ("spearman", "kendall"):
        values = fields.numbers(agreement.get(statistic), f"agreement.{statistic}", VIEW, 2)
        if values.shape != (len(methods), len(methods)):
            raise InputError(f"agreement.{statistic} of the {VIEW} answer is not a methods × methods matrix")
        statistics[statistic] = values
    scores = np.array(rows, dtype=float).reshape(len(methods), len(units))  # (methods, units)
    return methods, units, scores, statistics


def figure(answer: Mapping[str, Any], options: ExportOptions) -> Any:
    """Scores side by side (scaled per method) above the Spearman and Kendall matrices."""
    methods, units, scores, statistics = _read(answer)
    width = fields.width_for(len(units), 0.32, 5.0)
    fig, grid = new_figure(width, 4.2 + 0.35 * len(methods) + 0.45 * len(methods), 2, 2,
                           height_ratios=[max(1.0, 0.45 * len(methods)), max(2.2, 0.5 * len(methods))])  # fmt: skip
    top = fields.top_spanning(fig, grid)
    peaks = np.nanmax(np.abs(scores), axis=1, initial=0.0) if scores.size else np.zeros(len(methods))
    scaled = scores / np.where(peaks > 0, peaks, 1.0)[:, None]  # (methods, units) in [-1, 1]
    matrix(fig, top, scaled, cmap=signed_colormap(), bar_label="score ÷ the method's largest |score|", vmin=-1, vmax=1)
    _raw_numbers(top, scores, scaled)
    note = token_axis(top, units, "x")
    top.set_yticks(range(len(methods)), methods, fontsize=8)
    unit = str(answer.get("granularity") or "unit")
    top.set_xlabel(f"{unit}{note}")
    top.set_ylabel("method")
    top.set_title("each method's scores (raw score in the cell)", fontsize=9)
    for axes, statistic, name in ((grid[1, 0], "spearman", "Spearman ρ"), (grid[1, 1], "kendall", "Kendall τ-b")):
        matrix(fig, axes, statistics[statistic], cmap=signed_colormap(), bar_label=name, vmin=-1, vmax=1)
        fields.annotate_cells(axes, statistics[statistic])
        axes.set_xticks(range(len(methods)), methods, rotation=30, ha="right", fontsize=7)
        axes.set_yticks(range(len(methods)), methods, fontsize=7)
        axes.set_xlabel("method")
        axes.set_ylabel("method")
        axes.set_title(f"rank agreement: {name}", fontsize=9)
    target = fields.mapping(answer, "target")
    shown = f"{len(methods)} methods on {len(units)} {unit}s, target {str(target.get('text', '?'))!r}"
    return finish(fig, fields.title(options, f"Attribution methods compared: {shown}"), fields.footer(answer, shown))


def _raw_numbers(axes: Any, scores: np.ndarray, scaled: np.ndarray) -> None:
    from attnscope.render.palette import fmt

    if scores.size > 600:
        return
    for (row, column), value in np.ndenumerate(scores):
        ink = "#ffffff" if abs(scaled[row, column]) > 0.6 else "#000000"
        axes.text(column, row, fmt(float(value)), ha="center", va="center", fontsize=5.5, color=ink,
                  rotation=90 if scores.shape[1] > 12 else 0)  # fmt: skip


def table(answer: Mapping[str, Any], options: ExportOptions) -> Table:
    """Rows ``scores`` (one per unit: its index, text, each method's raw score), then ``spearman``
    and ``kendall`` (one per method: its row of the matrix)."""
    methods, units, scores, statistics = _read(answer)
    rows: list[list[Any]] = [
        ["scores", position, unit, *(_cell(v) for v in scores[:, position])] for position, unit in enumerate(units)
    ]
    for statistic in ("spearman", "kendall"):
        rows += [[statistic, i, name, *(_cell(v) for v in statistics[statistic][i])] for i, name in enumerate(methods)]
    shown = f"{len(methods)} methods, {len(units)} units"
    return Table(["table", "row", "label", *methods], rows, fields.meta(VIEW, shown, answer))


def _cell(value: float) -> float | None:
    return None if np.isnan(value) else float(value)
