"""Export of a counterfactual (``POST /api/counterfactual``, ``counterfactual --json``): a text and
its edited twin side by side; every difference is counterfactual − original, on tokens matched by
characters.

Four panels, as the Counterfactual view: the query's attention on each matched token before (the
original, grey) and after (the counterfactual, the attention colour); the difference map of the
shared tokens (signed colours, symmetric colour bar); the attribution shift per matched token
(signed bars; absent when the answer ran no method); and each head's total variation distance
between its two query rows (layers × heads, sequential scale 0 … 1, the top heads outlined). The
table: one row per matched token with its attention and attribution before, after and shift.
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
    signed_colormap,
    token_axis,
)
from attnscope.render.palette import hex_colour, palette, rgb

VIEW = "counterfactual"
TITLE = "counterfactual"
ANSWER_KINDS = ("counterfactual",)
SHIFT_COLUMNS = ("before", "after", "shift")


def _matched(block: Any, what: str) -> tuple[list[str], np.ndarray, list[tuple[int, int]]]:
    """(token texts, (matched, 3) before/after/shift, (original, counterfactual) index pairs)."""
    rows = fields.objects(block, what, VIEW)
    texts, values, pairs = [], [], []
    for number, row in enumerate(rows):
        token = row.get("token")
        if not isinstance(token, str):
            raise InputError(f"{what}[{number}] of the {VIEW} answer has no token text")
        texts.append(token)
        values.append([fields.number(row.get(k), f"{what}[{number}].{k}", VIEW, null=True) for k in SHIFT_COLUMNS])
        pairs.append(
            (fields.index(row.get("original"), what, VIEW), fields.index(row.get("counterfactual"), what, VIEW))
        )
    return texts, np.array(values, dtype=float).reshape(len(rows), 3), pairs


class Read:
    """The checked parts of a counterfactual answer the export draws."""

    def __init__(self, answer: Mapping[str, Any]) -> None:
        self.answer = fields.expect(answer, ANSWER_KINDS, VIEW)
        attention = fields.field(answer, "attention", Mapping, VIEW)
        self.tokens, self.attention, self.pairs = _matched(attention.get("matched"), "attention.matched")
        difference = fields.field(answer, "difference", Mapping, VIEW)
        self.map_tokens = fields.strings(difference.get("tokens"), "difference.tokens", VIEW)
        self.map = fields.numbers(difference.get("map"), "difference.map", VIEW, 2).reshape(-1, len(self.map_tokens))
        if self.map.shape != (len(self.map_tokens), len(self.map_tokens)):
            raise InputError(f"difference.map of the {VIEW} answer is not square over difference.tokens")
        heads = fields.field(answer, "heads", Mapping, VIEW)
        self.tvd = fields.numbers(heads.get("tvd"), "heads.tvd", VIEW, 2)  # (layers, heads)
        self.top = [(fields.index(h.get("layer"), "heads.top", VIEW), fields.index(h.get("head"), "heads.top", VIEW))
                    for h in fields.objects(heads.get("top", []), "heads.top", VIEW)]  # fmt: skip
        block = answer.get("attribution")
        self.method: str | None = None
        self.attribution = np.full((len(self.tokens), 3), np.nan)
        if block is not None:
            if not isinstance(block, Mapping) or not isinstance(block.get("method"), str):
                raise InputError(f"attribution of the {VIEW} answer is neither null nor a method's shift")
            self.method = block["method"]
            _, values, pairs = _matched(block.get("matched"), "attribution.matched")
            by_pair = dict(zip(pairs, values, strict=True))
            self.attribution = np.array([by_pair.get(pair, [np.nan] * 3) for pair in self.pairs]).reshape(-1, 3)
        view = fields.mapping(answer, "view")
        self.label = str(view.get("label") or "")
        edits = [c for c in fields.listing(answer, "changes") if isinstance(c, Mapping)]
        self.edit = "; ".join(f"{c.get('old', '')!r} → {c.get('new', '')!r}" for c in edits) or "the edit"


def figure(answer: Mapping[str, Any], options: ExportOptions) -> Any:
    """Attention before/after, the difference map, the attribution shift and the heads' TVD."""
    read = Read(answer)
    n = len(read.tokens)
    fig, grid = new_figure(max(12.0, fields.width_for(2 * n, 0.2, 4.0)), 9.0, 2, 2)
    ink = palette()["ink"]
    bars = grid[0, 0]
    places = np.arange(n)
    bars.bar(places - 0.2, np.nan_to_num(read.attention[:, 0]), width=0.4, color=ink["muted"], label="original")
    bars.bar(places + 0.2, np.nan_to_num(read.attention[:, 1]), width=0.4, color=hex_colour(rgb("attention")),
             label="counterfactual")  # fmt: skip
    note = token_axis(bars, read.tokens, "x")
    bars.set_xlabel(f"matched token{note}")
    bars.set_ylabel("attention weight")
    bars.yaxis.set_major_formatter(number_formatter())
    bars.legend(fontsize=7)
    bars.set_title(f"the query's attention, {read.label}", fontsize=9)
    bound = float(np.nanmax(np.abs(read.map))) if np.isfinite(read.map).any() and read.map.size else 1.0
    heat = grid[0, 1]
    matrix(fig, heat, read.map, cmap=signed_colormap(), bar_label="counterfactual − original", vmin=-(bound or 1.0),
           vmax=bound or 1.0)  # fmt: skip
    heat.set_xlabel(f"key (shared token){token_axis(heat, read.map_tokens, 'x')}")
    heat.set_ylabel(f"query (shared token){token_axis(heat, read.map_tokens, 'y')}")
    heat.set_title("difference map of the shared tokens", fontsize=9)
    shift = grid[1, 0]
    if read.method is None:
        shift.text(0.5, 0.5, "no attribution method was run (method none)", ha="center", va="center", fontsize=9)
        shift.set_axis_off()
    else:
        values = np.nan_to_num(read.attribution[:, 2])
        positive, negative = hex_colour(rgb("positive")), hex_colour(rgb("negative"))
        shift.bar(places, values, color=[positive if v >= 0 else negative for v in values], width=0.8)
        shift.axhline(0, color=ink["muted"], linewidth=0.6)
        shift.set_xlabel(f"matched token{token_axis(shift, read.tokens, 'x')}")
        shift.set_ylabel(f"{read.method} shift")
        shift.yaxis.set_major_formatter(number_formatter())
        shift.set_title(f"attribution shift ({read.method}): counterfactual − original", fontsize=9)
    _heads(fig, grid[1, 1], read)
    shown = f"{read.edit}, {n} matched tokens"
    return finish(fig, fields.title(options, f"Counterfactual: {shown}"), fields.footer(answer, shown))


def _heads(fig: Any, axes: Any, read: Read) -> None:
    from matplotlib.patches import Rectangle

    matrix(fig, axes, read.tvd, cmap=sequential_colormap(), bar_label="total variation distance", vmin=0, vmax=1)
    fields.annotate_cells(axes, read.tvd, limit=200)
    for layer, head in read.top[:5]:
        axes.add_patch(Rectangle((head - 0.5, layer - 0.5), 1, 1, fill=False, edgecolor="#111111", linewidth=1.4))
    from matplotlib.ticker import MaxNLocator

    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_xlabel("head")
    axes.set_ylabel("layer")
    axes.set_title("how much each head's query row changed (top 5 outlined)", fontsize=9)


def table(answer: Mapping[str, Any], options: ExportOptions) -> Table:
    """One row per matched token: its index in each text, its text, attention and attribution
    before, after and shift (attribution empty when no method ran)."""
    read = Read(answer)
    rows = [
        [original, changed, token, *(_cell(v) for v in read.attention[i]), *(_cell(v) for v in read.attribution[i])]
        for i, ((original, changed), token) in enumerate(zip(read.pairs, read.tokens, strict=True))
    ]
    columns = ["original_index", "counterfactual_index", "token", "attention_before", "attention_after",
               "attention_shift", "attribution_before", "attribution_after", "attribution_shift"]  # fmt: skip
    return Table(columns, rows, fields.meta(VIEW, f"{read.edit}; {read.label}", answer))


def _cell(value: float) -> float | None:
    return None if np.isnan(value) else float(value)
