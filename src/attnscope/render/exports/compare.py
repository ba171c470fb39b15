"""Export of two prompts compared (``POST /api/compare``, ``compare --json``): their attention maps
on what both texts share, and the difference A − B. A two-model comparison (``model_comparison``,
what the page's Compare tab shows) is drawn by :mod:`.compare_models` under this name too.

Four panels: the token difference map (A − B on the tokens matched by characters, the answer's
layer and heads), the unit difference map (every query row, on the words — or sentences, paragraphs
— both texts cover), and the two unit maps A and B on the attention scale. Signed maps use the
page's diverging colours, symmetric around 0 at the largest |difference|. The table: one row per
(query, key) cell of each map.
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
    attention_colormap,
    finish,
    matrix,
    new_figure,
    signed_colormap,
    token_axis,
)

VIEW = "compare"
TITLE = "two prompts compared"
ANSWER_KINDS = ("comparison", "model_comparison")  # the page's Compare tab compares two models


class Read:
    """The checked maps of a two-prompt comparison."""

    def __init__(self, answer: Mapping[str, Any]) -> None:
        answer = fields.expect(answer, "comparison", VIEW)
        prompts = fields.objects(fields.field(answer, "prompts", list, VIEW), "prompts", VIEW)
        difference = answer.get("difference")
        if not isinstance(difference, Mapping) or len(prompts) != 2:
            raise InputError(
                f"the {VIEW} export draws the difference of two prompts; this answer compares {len(prompts)}"
            )
        self.texts = [str(p.get("text", "")) for p in prompts]
        self.label = str(difference.get("label") or "")
        self.tokens = fields.strings(difference.get("tokens"), "difference.tokens", VIEW)
        self.tokens_map = _square(difference.get("difference"), "difference.difference", len(self.tokens))
        units = difference.get("units")
        if not isinstance(units, Mapping):
            raise InputError(f"difference.units of the {VIEW} answer is missing")
        self.granularity = str(units.get("granularity") or "unit")
        self.units = fields.token_texts(units.get("units"), "difference.units.units", VIEW)
        self.map_a = _square(units.get("map_a"), "difference.units.map_a", len(self.units))
        self.map_b = _square(units.get("map_b"), "difference.units.map_b", len(self.units))
        self.units_map = _square(units.get("difference"), "difference.units.difference", len(self.units))


def _square(value: Any, what: str, n: int) -> np.ndarray:
    array = fields.numbers(value, what, VIEW, 2) if n else np.zeros((0, 0))
    if array.shape != (n, n):
        raise InputError(f"{what} of the {VIEW} answer is not {n} × {n}")
    return array


def _signed(fig: Any, axes: Any, values: np.ndarray, labels: list[str], unit: str, title: str) -> None:
    bound = float(np.nanmax(np.abs(values))) if values.size and np.isfinite(values).any() else 1.0
    matrix(fig, axes, values, cmap=signed_colormap(), bar_label="A − B", vmin=-(bound or 1.0), vmax=bound or 1.0)
    _axes(axes, labels, unit, title)


def _axes(axes: Any, labels: list[str], unit: str, title: str) -> None:
    axes.set_xlabel(f"key {unit}{token_axis(axes, labels, 'x')}")
    axes.set_ylabel(f"query {unit}{token_axis(axes, labels, 'y')}")
    axes.set_title(title, fontsize=9)


def _models(answer: Any) -> bool:
    """Whether ``answer`` compares two models (drawn as the ``compare-models`` view)."""
    return isinstance(answer, Mapping) and answer.get("result") == "model_comparison"


def figure(answer: Mapping[str, Any], options: ExportOptions) -> Any:
    """Token and unit difference maps above the two unit maps (two models: :mod:`.compare_models`)."""
    if _models(answer):
        from attnscope.render.exports import compare_models

        return compare_models.figure(answer, options)
    read = Read(answer)
    fig, grid = new_figure(max(12.0, fields.width_for(2 * len(read.tokens), 0.18, 4.0)), 10.0, 2, 2)
    _signed(fig, grid[0, 0], read.tokens_map, read.tokens, "token", f"A − B on matched tokens ({read.label})")
    _signed(fig, grid[0, 1], read.units_map, read.units, read.granularity, f"A − B on matched {read.granularity}s")
    top = max(float(np.nanmax(read.map_a, initial=0.0)), float(np.nanmax(read.map_b, initial=0.0))) or 1.0
    for axes, values, side in ((grid[1, 0], read.map_a, "A"), (grid[1, 1], read.map_b, "B")):
        matrix(fig, axes, values, cmap=attention_colormap(), bar_label="attention weight", vmin=0, vmax=top)
        _axes(
            axes,
            read.units,
            read.granularity,
            f"prompt {side}: {fields.short(read.texts[0 if side == 'A' else 1], 50)}",
        )
    shown = f"A {fields.short(read.texts[0], 40)!r} − B {fields.short(read.texts[1], 40)!r}, {read.label}"
    return finish(fig, fields.title(options, f"Two prompts compared: {shown}"), fields.footer(answer, shown))


def table(answer: Mapping[str, Any], options: ExportOptions) -> Table:
    """Rows ``tokens`` (query, key, difference; a and b empty: the answer keeps only their
    difference per token) and ``units`` (query, key, a, b, difference); two models: :mod:`.compare_models`."""
    if _models(answer):
        from attnscope.render.exports import compare_models

        return compare_models.table(answer, options)
    read = Read(answer)
    rows: list[list[Any]] = []
    for (query, key), value in np.ndenumerate(read.tokens_map):
        rows.append(["tokens", query, read.tokens[query], key, read.tokens[key], None, None, _cell(value)])
    for (query, key), value in np.ndenumerate(read.units_map):
        rows.append(["units", query, read.units[query], key, read.units[key], _cell(float(read.map_a[query, key])),
                     _cell(float(read.map_b[query, key])), _cell(value)])  # fmt: skip
    columns = ["map", "query", "query_text", "key", "key_text", "a", "b", "difference"]
    return Table(columns, rows, fields.meta(VIEW, read.label, answer))


def _cell(value: float) -> float | None:
    return None if np.isnan(value) else float(value)
