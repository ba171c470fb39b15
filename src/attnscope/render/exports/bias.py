"""Export of a bias probe run (``POST /api/bias``, ``bias --json``): the Bias view's two charts.

Top: one bar per pair, its log-probability gap (first − second variant of the suite's order) in the
page's signed colours, then the mean over pairs and each tag's mean with their bootstrap intervals as
error bars, a zero line; pairs named as the page names them (the template where both variants share
a prompt, else "first / second → continuation"). Below: for each term role (at most three), the
mean difference of attention mass to the term (layers × heads), signed colour bar symmetric around
0, the top heads outlined. The table: one row per pair (texts, probabilities, gaps), then the means.
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
    signed_colormap,
)
from attnscope.render.palette import hex_colour, palette, rgb

VIEW = "bias"
TITLE = "bias probes"
ANSWER_KINDS = ("bias",)
MAX_ROLES = 3  # head maps drawn (one per term role)
MAX_PAIR_LABELS = 80  # pairs named below the bars


def pair_label(pair: Mapping[str, Any]) -> str:
    """The page's ``pairLabel``."""
    first, second = pair["variants"][:2]
    if first.get("text") == second.get("text"):
        return str(pair.get("template", ""))
    return f"{first.get('identity')} / {second.get('identity')} → {str(first.get('continuation', '')).strip()}"


def _interval(block: Any, what: str) -> tuple[float, float, float]:
    """(mean, low, high) of an interval block, checked: low ≤ mean ≤ high (nulls allowed)."""
    if not isinstance(block, Mapping):
        raise InputError(f"{what} of the {VIEW} answer is not an interval")
    mean, low, high = (fields.number(block.get(k), f"{what}.{k}", VIEW, null=True) for k in ("mean", "low", "high"))
    if not low <= mean <= high and not any(np.isnan(v) for v in (mean, low, high)):
        raise InputError(f"{what} of the {VIEW} answer has its mean outside its interval")
    return mean, low, high


class Read:
    """The checked pairs, means and head maps of a bias answer."""

    def __init__(self, answer: Mapping[str, Any]) -> None:
        answer = fields.expect(answer, ANSWER_KINDS, VIEW)
        self.pairs = fields.objects(fields.field(answer, "pairs", list, VIEW), "pairs", VIEW)
        for number, pair in enumerate(self.pairs):
            variants = pair.get("variants")
            if not isinstance(variants, list) or len(variants) < 2 or not all(isinstance(v, Mapping) for v in variants):
                raise InputError(f"pairs[{number}] of the {VIEW} answer has not two variants")
            if not isinstance(pair.get("gap"), Mapping):
                raise InputError(f"pairs[{number}] of the {VIEW} answer has no gap")
        self.gaps = np.array([fields.number(p["gap"].get("logprob"), f"pairs[{i}].gap.logprob", VIEW, null=True)
                              for i, p in enumerate(self.pairs)])  # fmt: skip
        summary = fields.field(answer, "summary", Mapping, VIEW)
        gap = fields.mapping(summary, "gap")
        self.means = [("mean of all pairs", _interval(gap.get("logprob"), "summary.gap.logprob"))]
        tags = fields.mapping(summary, "by_tag")
        for tag, group in tags.items():
            block = fields.mapping(group, "gap").get("logprob") if isinstance(group, Mapping) else None
            self.means.append((f"tag {tag}", _interval(block, f"summary.by_tag.{tag}.gap.logprob")))
        heads = fields.mapping(summary, "heads")
        self.heads: list[tuple[str, list[int], np.ndarray, list[tuple[int, int]]]] = []
        for role, block in list(heads.items())[:MAX_ROLES]:
            if not isinstance(block, Mapping):
                raise InputError(f"summary.heads.{role} of the {VIEW} answer is not an object")
            values = fields.numbers(block.get("mean_difference"), f"summary.heads.{role}.mean_difference", VIEW, 2)
            layers = [fields.index(v, "layers", VIEW) for v in fields.listing(block, "layers")]
            if len(layers) != values.shape[0]:
                raise InputError(f"summary.heads.{role} of the {VIEW} answer has not one row per layer")
            top = [
                (fields.index(h.get("layer"), "top", VIEW), fields.index(h.get("head"), "top", VIEW))
                for h in fields.objects(fields.listing(block, "top"), "top", VIEW)
            ]
            self.heads.append((str(role), layers, values, top))
        suite = fields.mapping(answer, "suite")
        self.suite = str(suite.get("name", "?"))
        order = fields.listing(suite, "order")
        self.order = [str(o) for o in order[:2]] if len(order) >= 2 else ["first", "second"]
        self.confidence = summary.get("confidence")


def figure(answer: Mapping[str, Any], options: ExportOptions) -> Any:
    """The pairs' gaps with the means' intervals above the head maps per role."""
    read = Read(answer)
    n_bars = len(read.pairs) + len(read.means) + 1
    columns = max(1, len(read.heads))
    fig, grid = new_figure(fields.width_for(n_bars, 0.26, 4.0), 10.0 if read.heads else 5.5, 2 if read.heads else 1,
                           columns)  # fmt: skip
    grid = fields.axes_grid(grid, 2 if read.heads else 1, columns)
    bars = fields.top_spanning(fig, grid) if read.heads and columns > 1 else grid[0, 0]
    _gaps(bars, read)
    for axes, (role, layers, values, top) in zip(grid[1] if read.heads else [], read.heads, strict=False):
        _heads(fig, axes, read, role, layers, values, top)
    shown = f"suite {read.suite}, {len(read.pairs)} pairs, {read.order[0]} − {read.order[1]}"
    return finish(fig, fields.title(options, f"Bias probes: {shown}"), fields.footer(answer, shown))


def _gaps(axes: Any, read: Read) -> None:
    positive, negative = hex_colour(rgb("positive")), hex_colour(rgb("negative"))
    ink = palette()["ink"]
    gaps = np.nan_to_num(read.gaps)
    axes.bar(range(len(gaps)), gaps, color=[positive if g >= 0 else negative for g in gaps], width=0.8)
    start = len(gaps) + 1  # one empty slot between the pairs and the means
    for offset, (_, (mean, low, high)) in enumerate(read.means):
        place = start + offset
        axes.bar([place], [mean], color=ink["muted"], width=0.8)
        if np.isfinite([mean, low, high]).all():
            axes.errorbar(
                [place], [mean], yerr=[[mean - low], [high - mean]], color=ink["text"], capsize=3, linewidth=1
            )
    step = max(1, -(-len(read.pairs) // MAX_PAIR_LABELS))  # beyond, every n-th pair is named
    labels = [fields.short(pair_label(p), 22) if i % step == 0 else "" for i, p in enumerate(read.pairs)]
    labels += [""] + [name for name, _ in read.means]
    axes.set_xticks(range(len(labels)), labels, rotation=90, fontsize=6.5)
    axes.axhline(0, color=ink["muted"], linewidth=0.6)
    axes.set_xlim(-0.6, len(labels) - 0.4)
    named = "pair" if step == 1 else f"pair (every {step}th named)"
    axes.set_xlabel(f"{named}, then the means with their bootstrap intervals")
    axes.set_ylabel(f"log-probability gap, {read.order[0]} − {read.order[1]}")
    axes.yaxis.set_major_formatter(number_formatter())
    percent = f"{float(read.confidence) * 100:g}% " if isinstance(read.confidence, int | float) else ""
    axes.set_title(f"each pair's gap; means with {percent}intervals", fontsize=9)


def _heads(fig: Any, axes: Any, read: Read, role: str, layers: list[int], values: np.ndarray,
           top: list[tuple[int, int]]) -> None:  # fmt: skip
    from matplotlib.patches import Rectangle
    from matplotlib.ticker import MaxNLocator

    bound = float(np.nanmax(np.abs(values))) if values.size and np.isfinite(values).any() else 1.0
    matrix(fig, axes, values, cmap=signed_colormap(), bar_label=f"attention mass, {read.order[0]} − {read.order[1]}",
           vmin=-(bound or 1.0), vmax=bound or 1.0)  # fmt: skip
    fields.annotate_cells(axes, values, limit=150)
    for layer, head in top:
        if layer in layers:
            axes.add_patch(Rectangle((head - 0.5, layers.index(layer) - 0.5), 1, 1, fill=False, edgecolor="#111111",
                                     linewidth=1.4))  # fmt: skip
    step = max(1, -(-len(layers) // 40))
    axes.set_yticks(range(0, len(layers), step), [str(v) for v in layers[::step]], fontsize=7)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_xlabel("head")
    axes.set_ylabel("layer")
    axes.set_title(f"mass to the {role} term (top heads outlined)", fontsize=9)


def table(answer: Mapping[str, Any], options: ExportOptions) -> Table:
    """One row per pair (id, tags, each variant's text, continuation and probability, the gaps),
    then one per mean (its interval in the low/high columns)."""
    read = Read(answer)
    rows: list[list[Any]] = []
    for pair, gap in zip(read.pairs, read.gaps, strict=True):
        first, second = pair["variants"][:2]
        tags = fields.listing(pair, "tags")
        rows.append(["pair", pair.get("id"), " ".join(map(str, tags)), first.get("text"), first.get("continuation"),
                     first.get("prob"), second.get("text"), second.get("continuation"), second.get("prob"),
                     None if np.isnan(gap) else float(gap), pair["gap"].get("prob"), None, None])  # fmt: skip
    for name, (mean, low, high) in read.means:
        rows.append(["mean", name, "", None, None, None, None, None, None, mean, None, low, high])
    columns = ["row", "id", "tags", "first_text", "first_continuation", "first_prob", "second_text",
               "second_continuation", "second_prob", "gap_logprob", "gap_prob", "low", "high"]  # fmt: skip
    return Table(columns, rows, fields.meta(VIEW, f"suite {read.suite}", answer))
