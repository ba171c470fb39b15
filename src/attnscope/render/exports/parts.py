"""Export of prompt parts (``POST /api/parts``, ``parts --json``): the attention mass from the query
(a token, or a whole part) to each named part of the prompt, layer by layer.

Left: layers × parts, the mean over heads (the page's table), on the page's attention scale (0 to 1:
a mass is a share of the query's attention), each cell's value written. Right: the chosen layer's
heads × parts (``--layer``, default the last), so a head that reads one part stands out. The last
column, ``(other)``, is the mass on every token outside the parts. The table: one row per (layer,
head or ``mean``, part).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from attnscope.errors import InputError, OutOfRangeError
from attnscope.render.exports import fields
from attnscope.render.exports.frame import ExportOptions, Table, attention_colormap, finish, matrix, new_figure

VIEW = "parts"
TITLE = "prompt parts"
ANSWER_KINDS = ("parts",)


def _read(answer: Mapping[str, Any]) -> tuple[list[str], np.ndarray, np.ndarray, str]:
    """(part names, mass (layers, heads, parts), mean over heads (layers, parts), query label)."""
    answer = fields.expect(answer, ANSWER_KINDS, VIEW)
    names = fields.strings(fields.field(answer, "parts", list, VIEW), "parts", VIEW)
    mass = fields.numbers(fields.field(answer, "mass", list, VIEW), "mass", VIEW, 3)  # (layers, heads, parts)
    mean = fields.numbers(fields.field(answer, "mean_over_heads", list, VIEW), "mean_over_heads", VIEW, 2)
    if mass.size == 0 or mass.shape[2] != len(names) or mean.shape != (mass.shape[0], mass.shape[2]):
        raise InputError(f"mass of the {VIEW} answer is not (layers, heads, parts) with one column per part")
    label = answer.get("query_label")
    return names, mass, mean, label if isinstance(label, str) else f"query {answer.get('query')}"


def _layer(options: ExportOptions, n_layers: int) -> int:
    if not -n_layers <= options.layer < n_layers:
        raise OutOfRangeError(f"layer {options.layer} is out of range: the answer has {n_layers} layers")
    return options.layer % n_layers


def figure(answer: Mapping[str, Any], options: ExportOptions) -> Any:
    """Layers × parts (mean over heads) beside the chosen layer's heads × parts."""
    names, mass, mean, query = _read(answer)
    layer = _layer(options, mass.shape[0])
    width = 5.0 + 2 * 0.9 * len(names)
    fig, grid = new_figure(width, 2.2 + 0.3 * max(mass.shape[0], mass.shape[1]), 1, 2)
    left, right = grid[0]
    for axes, values, rows, row_title, what in (
        (left, mean, list(range(mass.shape[0])), "layer", "mean over heads, every layer"),
        (right, mass[layer], list(range(mass.shape[1])), "head", f"every head of layer {layer}"),
    ):
        matrix(fig, axes, values, cmap=attention_colormap(), bar_label="attention mass (share of the query's)",
               vmin=0, vmax=1)  # fmt: skip
        fields.annotate_cells(axes, values)
        slanted = len(names) > 6  # a few parts read upright (and stay whole in a PDF's text)
        axes.set_xticks(range(len(names)), [fields.short(n, 16) for n in names], rotation=30 if slanted else 0,
                        ha="right" if slanted else "center", fontsize=8)  # fmt: skip
        step = max(1, -(-len(rows) // 40))
        axes.set_yticks(rows[::step], [str(r) for r in rows[::step]], fontsize=7)
        axes.set_xlabel("part")
        axes.set_ylabel(row_title)
        axes.set_title(what, fontsize=9)
    shown = f"attention from {query} to {len(names) - 1} parts"
    return finish(fig, fields.title(options, f"Prompt parts: {shown}"), fields.footer(answer, shown))


def table(answer: Mapping[str, Any], options: ExportOptions) -> Table:
    """One row per (layer, head, part): the mass; head ``mean`` rows hold the mean over heads."""
    names, mass, mean, query = _read(answer)
    rows: list[list[Any]] = []
    for layer in range(mass.shape[0]):
        for head in range(mass.shape[1]):
            rows += [[layer, head, name, _cell(mass[layer, head, p])] for p, name in enumerate(names)]
        rows += [[layer, "mean", name, _cell(mean[layer, p])] for p, name in enumerate(names)]
    return Table(["layer", "head", "part", "mass"], rows, fields.meta(VIEW, f"attention from {query}", answer))


def _cell(value: float) -> float | None:
    return None if np.isnan(value) else float(value)
