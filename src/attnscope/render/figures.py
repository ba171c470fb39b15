"""Figures for documents (the audit report): matplotlib PNGs with titles, labelled axes, colour bars
and numbers in the house format (:mod:`attnscope.render.palette`), Chinese token labels included.

Each function takes plain arrays and labels (the numbers a JSON answer carries) and returns PNG
bytes; none runs a model. Token axes show at most :data:`MAX_TOKEN_LABELS` labels (every n-th token
beyond that, said in the axis title).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import numpy as np

from attnscope.render.palette import colormap, fmt, hex_colour, palette, rgb

MAX_TOKEN_LABELS = 60
DPI = 110


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from attnscope.render.document import figure_font

    plt.rcParams["font.family"] = figure_font()
    plt.rcParams["axes.unicode_minus"] = False  # the CJK fonts lack U+2212
    return plt


def _png(figure: Any) -> bytes:
    import textwrap

    import matplotlib.pyplot as plt

    for axes in figure.axes:  # a title wider than its figure wraps instead of being cut
        title = axes.get_title()
        if title:
            columns = max(30, int(figure.get_figwidth() * 13))
            axes.set_title("\n".join(textwrap.wrap(title, columns)), fontsize=9)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    plt.close(figure)
    return buffer.getvalue()


def _label(text: str) -> str:
    """A token as an axis label: whitespace made visible, long pieces cut."""
    shown = text.replace("\n", "⏎").replace(" ", "·") or "∅"
    return shown if len(shown) <= 12 else shown[:11] + "…"


def _token_axis(axes: Any, labels: Sequence[str], axis: str = "x") -> str:
    """Ticks for up to MAX_TOKEN_LABELS token labels; the axis title's note when some are skipped."""
    step = max(1, -(-len(labels) // MAX_TOKEN_LABELS))
    ticks = list(range(0, len(labels), step))
    names = [_label(labels[i]) for i in ticks]
    if axis == "x":
        upright = len(ticks) <= 16 and max((len(n) for n in names), default=0) <= 6  # Chinese reads upright
        axes.set_xticks(ticks, names, rotation=0 if upright else 90, fontsize=8 if upright else 7)
    else:
        axes.set_yticks(ticks, names, fontsize=7)
    return "" if step == 1 else f" (every {step}th token labelled)"


def _colour_bar(figure: Any, image: Any, axes: Any, label: str) -> None:
    from matplotlib.ticker import FuncFormatter

    bar = figure.colorbar(image, ax=axes)
    bar.set_label(label, fontsize=8)
    bar.ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: fmt(value)))


def token_bars(
    values: Sequence[float | None],
    labels: Sequence[str],
    title: str,
    ylabel: str,
    *,
    marked: Sequence[int] = (),
    signed: bool = False,
) -> bytes:
    """A bar per token (``None``: no bar); ``marked`` tokens outlined in the ink colour (a rule's
    ``to`` tokens, the query)."""
    plt = _pyplot()
    ink = palette()["ink"]
    array = np.array([np.nan if v is None else v for v in values], dtype=float)
    figure, axes = plt.subplots(figsize=(max(5.5, min(14.0, 0.22 * len(labels) + 2)), 3.0))
    positive, negative = _signed_colours()
    bar_colours = [negative if signed and v < 0 else positive for v in np.nan_to_num(array)]
    bars = axes.bar(range(len(array)), np.nan_to_num(array), color=bar_colours, width=0.8)
    for index in marked:
        if 0 <= index < len(bars):
            bars[index].set_edgecolor(ink["text"])
            bars[index].set_linewidth(1.6)
    note = _token_axis(axes, labels)
    axes.set_xlabel(f"token{note}")
    axes.set_ylabel(ylabel)
    axes.set_title(title, fontsize=9)
    axes.set_xlim(-0.6, len(array) - 0.4)
    axes.yaxis.set_major_formatter(_formatter())
    if signed:
        axes.axhline(0, color=ink["muted"], linewidth=0.6)
    return _png(figure)


def _signed_colours() -> tuple[str, str]:
    """(positive, negative) as the page draws signed scores (palette ``diverging``)."""
    return hex_colour(rgb("positive")), hex_colour(rgb("negative"))


def _formatter() -> Any:
    from matplotlib.ticker import FuncFormatter

    return FuncFormatter(lambda value, _: fmt(value))


def heatmap(
    values: Any,
    title: str,
    *,
    xlabel: str,
    ylabel: str,
    bar_label: str,
    xlabels: Sequence[str] | None = None,
    ylabels: Sequence[str] | None = None,
    signed: bool = False,
    outlined: Sequence[tuple[int, int]] = (),
) -> bytes:
    """A matrix in the palette's colormap (signed: red/teal around 0, symmetric), with labelled axes,
    a colour bar, and ``outlined`` (row, column) cells boxed (a rule's failing cells)."""
    from matplotlib.colors import LinearSegmentedColormap
    from matplotlib.patches import Rectangle

    plt = _pyplot()
    array = np.array(values, dtype=float)
    if array.ndim != 2:
        raise ValueError(f"a heatmap needs a matrix, not shape {array.shape}")
    width = max(4.5, min(14.0, 0.18 * array.shape[1] + 3))
    figure, axes = plt.subplots(figsize=(width, max(2.6, min(5.5, 0.16 * array.shape[0] + 1.6))))
    if signed:
        positive, negative = _signed_colours()
        cmap = LinearSegmentedColormap.from_list("signed", [negative, "#ffffff", positive])
        bound = float(np.nanmax(np.abs(array))) if np.isfinite(array).any() else 1.0
        image = axes.imshow(array, aspect="auto", cmap=cmap, vmin=-bound or -1, vmax=bound or 1,
                            interpolation="nearest")  # fmt: skip
    else:
        image = axes.imshow(array, aspect="auto", cmap=colormap(), interpolation="nearest")
    xnote = _token_axis(axes, xlabels, "x") if xlabels is not None else ""
    ynote = _token_axis(axes, ylabels, "y") if ylabels is not None else ""
    if xlabels is None:
        from matplotlib.ticker import MaxNLocator

        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    if ylabels is None:
        from matplotlib.ticker import MaxNLocator

        axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    for row, column in outlined:
        axes.add_patch(Rectangle((column - 0.5, row - 0.5), 1, 1, fill=False, edgecolor="#111111", linewidth=1.4))
    axes.set_xlabel(xlabel + xnote)
    axes.set_ylabel(ylabel + ynote)
    axes.set_title(title, fontsize=9)
    _colour_bar(figure, image, axes, bar_label)
    return _png(figure)


def interval_bars(
    labels: Sequence[str],
    means: Sequence[float],
    lows: Sequence[float],
    highs: Sequence[float],
    title: str,
    ylabel: str,
) -> bytes:
    """A bar per item with its confidence interval as an error bar (bias gaps per template)."""
    plt = _pyplot()
    positive, negative = _signed_colours()
    mean = np.array(means, dtype=float)
    low = mean - np.array(lows, dtype=float)
    high = np.array(highs, dtype=float) - mean
    figure, axes = plt.subplots(figsize=(max(5.5, min(14.0, 0.32 * len(labels) + 2)), 3.4))
    axes.bar(range(len(mean)), mean, color=[negative if m < 0 else positive for m in mean],
             yerr=np.vstack([low, high]), capsize=2, error_kw={"linewidth": 0.8})  # fmt: skip
    axes.axhline(0, color="#777777", linewidth=0.6)
    axes.set_xticks(range(len(labels)), [_label(name) for name in labels], rotation=90, fontsize=7)
    axes.set_ylabel(ylabel)
    axes.set_title(title, fontsize=9)
    axes.yaxis.set_major_formatter(_formatter())
    return _png(figure)
