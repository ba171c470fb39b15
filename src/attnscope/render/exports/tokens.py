"""The token view export: every token as it appears in the text, coloured by the query's attention
row (a trace) or by a method's scores (an ``attribution`` answer: its units, the method named in the
title, a signed red/teal or an unsigned white-to-red colour bar scaled by its largest |score|, as
the page colours them).

Up to :data:`CHIP_TOKENS` tokens the figure is the text as chips in reading order (the query boxed
in the ink colour); longer inputs are a bar per token (over :data:`~.frame.MAX_AXIS_TOKENS`, the
max over blocks, said in the axis title).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from attnscope.errors import InputError
from attnscope.render.exports.common import attention_rows, selection_words, shown
from attnscope.render.exports.frame import (
    ExportOptions,
    Table,
    attention_colormap,
    colour_bar,
    finish,
    meta_of,
    new_figure,
    number_formatter,
    pool_axis,
    pool_vector,
    pooled_labels,
    provenance_line,
    require,
    signed_colormap,
    token_axis,
    token_label,
)
from attnscope.render.palette import fmt, palette

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.colors import Colormap
    from matplotlib.figure import Figure

    from attnscope.capture.trace import Trace

CHIP_TOKENS = 400  # more tokens than this: bars instead of chips
LINE_INCHES = 7.2  # the text's line width in the figure
CHAR_INCHES = (0.078, 0.14)  # a narrow and a wide (CJK) character at 9 pt


def _scores(data: Trace | Mapping[str, Any], options: ExportOptions) -> dict[str, Any]:
    """Labels, values, colour scale and words of either source (the numbers the figure and table show)."""
    if isinstance(data, Mapping):
        return _method_scores(data)
    seen = shown(data, options)
    row = attention_rows(data, seen.view, np.array([seen.view.query]))[0]  # (key,)
    words = selection_words(seen.view)
    query = token_label(seen.query_labels[seen.view.query])
    layer_words = selection_words(seen.view, query=False)  # the query is named in the title already
    return {
        "labels": seen.key_labels,
        "values": row,
        "signed": False,
        "scale": 1.0,
        "bar": "attention weight (raw probability)",
        "title": f"Token view — attention of query {seen.view.query} «{query}», {layer_words}",
        "marked": seen.view.query if seen.query_labels is seen.key_labels else None,
        "footer": seen.footer(words),
        "meta": seen.meta("tokens", words),
        "spans": None,
    }


def _method_scores(answer: Mapping[str, Any]) -> dict[str, Any]:
    from attnscope.methods import catalogue

    method = require(answer, "method", str, "token view")
    units = require(answer, "units", list, "token view")
    scores = require(answer, "scores", list, "token view")
    if len(units) != len(scores) or not all(isinstance(u, Mapping) and isinstance(u.get("text"), str) for u in units):
        raise InputError("the attribution answer's units and scores do not match")
    try:
        values = np.array([np.nan if s is None else float(s) for s in scores], dtype=float)
    except (TypeError, ValueError):
        raise InputError("the attribution answer's scores are not numbers") from None
    signed = catalogue.get(method).signed if method in catalogue.methods() else bool(np.nanmin(values, initial=0) < 0)
    finite = np.abs(values[np.isfinite(values)])
    scale = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
    granularity = answer.get("granularity") or "token"
    target = (answer.get("target") or {}).get("text")
    about = f"{method} scores per {granularity}" + (f", explaining «{target}»" if target else "")
    shown_words = f"method {method}, {granularity} units"
    return {
        "labels": [str(u["text"]) for u in units],
        "values": values,
        "signed": signed,
        "scale": scale,
        "bar": f"{method} score" + (" (signed)" if signed else ""),
        "title": f"Token view — {about}",
        "marked": None,
        "footer": provenance_line(answer.get("model"), answer.get("provenance"), shown_words),
        "meta": meta_of("tokens", shown_words, answer.get("model"), answer.get("provenance")),
        "spans": [(u.get("start"), u.get("end")) for u in units],
    }


def _colormap(signed: bool) -> Colormap:
    if signed:
        return signed_colormap()
    return attention_colormap()  # white to the attention (= positive) colour


def _width(text: str) -> float:
    narrow, wide = CHAR_INCHES
    return sum(wide if unicodedata.east_asian_width(c) in ("W", "F") else narrow for c in text) + 0.06


def _chip_text(text: str) -> str:
    shown = text.replace("\n", "⏎").replace("\t", "⇥")
    return (shown.replace(" ", "·") if not shown.strip() else shown) or "∅"  # a blank token stays visible


def _layout(labels: Sequence[str]) -> list[tuple[float, int]]:
    """(x inches, line) of each chip: the text flows left to right, wrapping at LINE_INCHES."""
    places: list[tuple[float, int]] = []
    x, line = 0.0, 0
    for label in labels:
        width = _width(_chip_text(label))
        if x > 0 and x + width > LINE_INCHES:
            x, line = 0.0, line + 1
        places.append((x, line))
        x += width + 0.02
    return places


def _chips(
    axes: Axes, labels: Sequence[str], values: np.ndarray, cmap: Colormap, norm: Any, marked: int | None
) -> None:
    from attnscope.render.palette import ink_on_css

    ink = palette()["ink"]
    places = _layout(labels)
    lines = (places[-1][1] + 1) if places else 1
    for index, (label, (x, line)) in enumerate(zip(labels, places, strict=True)):
        value = values[index]
        r, g, b, _ = cmap(norm(value)) if np.isfinite(value) else (1.0, 1.0, 1.0, 1.0)
        background = "#{:02x}{:02x}{:02x}".format(*(round(c * 255) for c in (r, g, b)))
        boxed = index == marked
        axes.text(x, line, _chip_text(label), fontsize=9, va="center", ha="left", color=ink_on_css(background),
                  bbox={"facecolor": background, "edgecolor": ink["text"] if boxed else ink["line"],
                        "linewidth": 1.6 if boxed else 0.4, "boxstyle": "square,pad=0.15"})  # fmt: skip
    axes.set_xlim(-0.05, LINE_INCHES + 0.3)
    axes.set_ylim(lines - 0.4, -0.6)
    axes.axis("off")


def figure(data: Trace | Mapping[str, Any], options: ExportOptions) -> Figure:
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    shown_data = _scores(data, options)
    labels, values = shown_data["labels"], np.asarray(shown_data["values"], dtype=float)
    signed, scale = shown_data["signed"], shown_data["scale"]
    cmap = _colormap(signed)
    norm = Normalize(vmin=-scale if signed else 0.0, vmax=scale)
    bar_label = shown_data["bar"] + (
        "" if scale == 1.0 and not signed else f", colour scale {'±' if signed else '0 to '}{fmt(scale)}"
    )
    chips = len(labels) <= CHIP_TOKENS
    if chips:
        lines = (_layout(labels)[-1][1] + 1) if labels else 1
        figure, axes = new_figure(LINE_INCHES + 0.8, 2.2 + 0.3 * lines)
        _chips(axes, labels, values, cmap, norm, shown_data["marked"])
    else:
        factor = pool_axis(len(labels))
        pooled = pool_vector(np.abs(values) if signed else values, factor)  # (cells,)
        figure, axes = new_figure(14.0, 4.0)
        colours = cmap(norm(np.nan_to_num(pool_vector(values, factor) if factor == 1 else pooled)))
        heights = np.nan_to_num(pooled)
        axes.vlines(np.arange(len(pooled)), 0, heights, colors=colours, linewidth=max(0.3, 900 / len(pooled)))
        axes.set_xlim(-0.5, len(pooled) - 0.5)
        axes.set_ylim(0, max(float(heights.max(initial=0.0)), 1e-12) * 1.05)
        note = token_axis(axes, pooled_labels(labels, factor), "x")
        block = "" if factor == 1 else f" (max |value| over blocks of {factor})"
        axes.set_xlabel(f"token{block}{note}")
        axes.set_ylabel(shown_data["bar"])
        axes.yaxis.set_major_formatter(number_formatter())
    colour_bar(figure, ScalarMappable(norm=norm, cmap=cmap), axes, bar_label, horizontal=chips)
    return finish(figure, options.title or shown_data["title"], shown_data["footer"])


def table(data: Trace | Mapping[str, Any], options: ExportOptions) -> Table:
    shown_data = _scores(data, options)
    values = shown_data["values"]
    if shown_data["spans"] is not None:  # a method's units
        units = zip(shown_data["labels"], shown_data["spans"], values, strict=True)
        rows = [[index, label, start, end, float(value)] for index, (label, (start, end), value) in enumerate(units)]
        return Table(["unit", "text", "start", "end", "score"], rows, shown_data["meta"])
    rows = [
        [index, label, float(value)]
        for index, (label, value) in enumerate(zip(shown_data["labels"], values, strict=True))
    ]
    return Table(["key", "key_token", "weight"], rows, shown_data["meta"])
