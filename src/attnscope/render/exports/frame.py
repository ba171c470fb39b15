"""The shared frame of every exported figure and table (the stable interface of the export modules).

An export module ``attnscope.render.exports.<view>`` exposes two functions::

    figure(data, options: ExportOptions) -> matplotlib.figure.Figure
    table(data, options: ExportOptions) -> Table

``data`` is a :class:`~attnscope.capture.trace.Trace` for the trace views (token view, heatmap,
grid, model view, lines, graph, Sankey, head metrics) and the JSON answer (a ``Mapping``) for the
answer views (head atlas, agreement, timeline, parts, …). A module builds its figure with
:func:`new_figure` and :func:`finish` (title, provenance footer), labels token axes with
:func:`token_axis`, adds colour bars with :func:`colour_bar`, and refuses a malformed answer with
:class:`~attnscope.errors.InputError` (one line). :func:`encode` turns the figure into PNG, SVG or
PDF bytes; :meth:`Table.csv` / :meth:`Table.json` the numbers.

Figures look like the page: the attention ramp (white to the palette's attention colour), the
signed red/teal pair, the sequential stops, numbers in the house format (3 significant digits) —
all from ``web/palette.json`` through :mod:`attnscope.render.palette` — and Chinese token labels in
the machine's CJK font. Sizes: at :data:`DPI` a figure at least :data:`MIN_WIDTH_IN` inches wide is
at least 1600 px wide; SVG keeps its text as text (``svg.fonttype: none``) and PDF embeds TrueType
fonts, so ``pdftotext`` reads the labels.
"""

from __future__ import annotations

import csv
import io
import json
import math
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from attnscope.contracts import SCHEMA_VERSION, plain
from attnscope.errors import InputError
from attnscope.render.palette import colormap, fmt, hex_colour, palette, rgb
from attnscope.version import __version__

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.colors import Colormap
    from matplotlib.figure import Figure

FIGURE_FORMATS: tuple[str, ...] = ("png", "svg", "pdf")
TABLE_FORMATS: tuple[str, ...] = ("csv", "json")
FORMATS: tuple[str, ...] = (*FIGURE_FORMATS, *TABLE_FORMATS, "html")
MEDIA_TYPES: dict[str, str] = {
    "png": "image/png",
    "svg": "image/svg+xml",
    "pdf": "application/pdf",
    "csv": "text/csv; charset=utf-8",
    "json": "application/json",
    "html": "text/html; charset=utf-8",
}
DPI = 200  # PNG pixels per inch
MIN_WIDTH_IN = 8.0  # 8 in × 200 dpi = 1600 px, the narrowest PNG written
MAX_TOKEN_LABELS = 80  # token labels per axis; beyond, every n-th token is labelled (said in the axis title)
MAX_AXIS_TOKENS = 8192  # a token axis longer than this is pooled into blocks (said in the title)
FOOTER_IN = 0.32  # the provenance footer's height, inches


@dataclass(frozen=True)
class ExportOptions:
    """What an export shows: the page's controls (layer, head, query, method, stack) and the words.

    ``layer``/``query`` count from the end when negative; ``head`` is an index, ``"mean"`` or
    ``"max"``; ``method`` colours the token view by that method's scores instead of attention.
    ``method_options`` are the method's own options (``steps``, ``target`` …), as the catalogue
    describes them. ``title`` replaces the view's default title. ``pii_policy`` masks personal
    data in token labels and texts (:mod:`attnscope.governance.masking`): ``mask`` by default, as
    the CLI and the server do; ``off`` keeps them.
    """

    layer: int = -1
    head: int | str = "mean"
    query: int = -1
    method: str | None = None
    method_options: Mapping[str, Any] = field(default_factory=dict)
    stack: str | None = None
    granularity: str = "token"
    metric: str | None = None  # the head-metrics view: one metric (None: every metric)
    language: str = "en"
    title: str | None = None
    pii_policy: str = "mask"  # a file leaves the process: masked unless asked otherwise (as runs are)


@dataclass
class Table:
    """An export's numbers: named columns, one row per item, and where they came from.

    ``meta`` holds ``view``, ``shown`` (what was selected), ``model`` and ``provenance``; the CSV
    carries it as ``#`` comment lines before the header (``pandas.read_csv(comment="#")`` skips them),
    the JSON as fields beside ``columns`` and ``rows``.
    """

    columns: list[str]
    rows: list[list[Any]]
    meta: dict[str, Any] = field(default_factory=dict)

    def csv(self) -> bytes:
        buffer = io.StringIO()
        for line in _meta_lines(self.meta):
            buffer.write(f"# {line}\n")
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(self.columns)
        for row in self.rows:
            writer.writerow([_csv_cell(value) for value in row])
        return buffer.getvalue().encode("utf-8")

    def json(self) -> bytes:
        body = {
            "schema_version": SCHEMA_VERSION,
            "result": "export",
            **{key: value for key, value in self.meta.items() if key not in ("provenance", "model")},
            "columns": self.columns,
            "rows": self.rows,
            "model": self.meta.get("model"),
            "provenance": self.meta.get("provenance"),
        }
        return json.dumps(plain(body), ensure_ascii=False, indent=1, allow_nan=False).encode("utf-8")


def _csv_cell(value: Any) -> Any:
    """Floats written with every digit (repr: they read back equal); None and NaN as empty cells."""
    if value is None:
        return ""
    if isinstance(value, float | np.floating):
        number = float(value)
        return "" if math.isnan(number) else repr(number)
    return value


def _meta_lines(meta: Mapping[str, Any]) -> list[str]:
    lines = [f"attnscope {__version__} export: {meta.get('view', '?')}"]
    if meta.get("shown"):
        lines.append(f"shown: {meta['shown']}")
    lines.append(provenance_line(meta.get("model"), meta.get("provenance")))
    return lines


# --- provenance --------------------------------------------------------------------------------
def provenance_line(model: Mapping[str, Any] | None, provenance: Mapping[str, Any] | None, shown: str = "") -> str:
    """One line: model name (spec), fingerprint's first 12 hex digits, attnscope version, the date of
    the result (or today) and what is shown."""
    model = model or {}
    record = provenance or {}
    name = model.get("name") or record.get("model_name") or "?"
    spec = model.get("spec") or record.get("model_spec") or "?"
    fingerprint = str(model.get("fingerprint") or record.get("model_fingerprint") or "—")[:12]
    version = record.get("attnscope_version") or __version__
    when = str(record.get("finished_at") or record.get("captured_at") or datetime.now(UTC).isoformat())[:10]
    parts = [f"model {name} ({spec})", f"fingerprint {fingerprint}", f"attnscope {version}", when]
    if record.get("masking_policy") not in (None, "off"):
        parts.append(f"personal data: {record['masking_policy']}")
    if shown:
        parts.append(shown)
    return " · ".join(parts)


def meta_of(view: str, shown: str, model: Any, provenance: Mapping[str, Any] | None) -> dict[str, Any]:
    """A table's ``meta`` from a trace's or an answer's model (ModelInfo or dict) and provenance."""
    model_dict = model.to_dict() if hasattr(model, "to_dict") else (dict(model) if model else None)
    return {"view": view, "shown": shown, "model": model_dict, "provenance": dict(provenance or {})}


# --- figures -----------------------------------------------------------------------------------
def pyplot() -> Any:
    """matplotlib's pyplot on the Agg backend with the CJK fallback font (imported on first use)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from attnscope.render.document import figure_font

    plt.rcParams["font.family"] = figure_font()
    plt.rcParams["axes.unicode_minus"] = False  # the CJK fonts lack U+2212
    plt.rcParams["svg.fonttype"] = "none"  # SVG text stays text
    plt.rcParams["pdf.fonttype"] = 42  # TrueType in PDFs: pdftotext reads the labels
    return plt


def new_figure(width: float, height: float, rows: int = 1, columns: int = 1, **grid: Any) -> tuple[Figure, Any]:
    """A figure of at least :data:`MIN_WIDTH_IN` × ``height`` inches with its axes (constrained layout,
    room kept at the bottom for the footer). Returns ``(figure, axes)`` as ``plt.subplots`` does."""
    plt = pyplot()
    width = max(MIN_WIDTH_IN, float(width))
    height = max(2.5, float(height))
    grid.setdefault("squeeze", rows * columns == 1)
    figure, axes = plt.subplots(rows, columns, figsize=(width, height), layout="constrained", **grid)
    figure.get_layout_engine().set(rect=(0, FOOTER_IN / height, 1, 1 - FOOTER_IN / height))
    return figure, axes


def finish(figure: Figure, title: str, footer: str) -> Figure:
    """The figure's title (wrapped to its width) on top and the provenance ``footer`` at the bottom."""
    ink = palette()["ink"]
    columns = max(40, int(figure.get_figwidth() * 11))
    figure.suptitle("\n".join(textwrap.wrap(title, columns)), fontsize=11, color=ink["text"])
    small = "\n".join(textwrap.wrap(footer, int(figure.get_figwidth() * 19)))
    figure.text(0.005, 0.004, small, fontsize=6.5, color=ink["muted"], ha="left", va="bottom")
    return figure


def encode(figure: Figure, form: str) -> bytes:
    """``figure`` as PNG (:data:`DPI`), SVG (text as text) or PDF (TrueType text) bytes; closes it."""
    if form not in FIGURE_FORMATS:
        raise InputError(f"a figure is written as png, svg or pdf, not {form!r}")
    plt = pyplot()
    buffer = io.BytesIO()
    metadata = (
        {"Creator": f"attnscope {__version__}"} if form in ("svg", "pdf") else {"Software": f"attnscope {__version__}"}
    )
    try:
        figure.savefig(buffer, format=form, dpi=DPI, metadata=metadata)
    finally:
        plt.close(figure)
    return buffer.getvalue()


def token_label(text: str) -> str:
    """A token as an axis label: whitespace made visible, long pieces cut (as the report's figures)."""
    shown = text.replace("\n", "⏎").replace(" ", "·") or "∅"
    return shown if len(shown) <= 12 else shown[:11] + "…"


def token_axis(axes: Axes, labels: Sequence[str], axis: str = "x", cap: int = MAX_TOKEN_LABELS) -> str:
    """Ticks for at most ``cap`` token labels on ``axis`` (cells at 0 … n−1); returns the note for
    the axis title when only every n-th token is labelled ("" otherwise)."""
    step = max(1, -(-len(labels) // max(1, cap)))
    ticks = list(range(0, len(labels), step))
    names = [token_label(labels[i]) for i in ticks]
    if axis == "x":
        upright = len(ticks) <= 24 and max((len(n) for n in names), default=0) <= 3  # Chinese reads upright
        axes.set_xticks(ticks, names, rotation=0 if upright else 90, fontsize=7)
    else:
        axes.set_yticks(ticks, names, fontsize=7)
    return "" if step == 1 else f" (every {ordinal(step)} token labelled)"


def ordinal(number: int) -> str:
    """2 -> '2nd', 13 -> '13th': the every-n-th notes of capped axes."""
    suffix = "th" if 10 <= number % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(number % 10, "th")
    return f"{number}{suffix}"


def number_formatter() -> Any:
    from matplotlib.ticker import FuncFormatter

    return FuncFormatter(lambda value, _: fmt(value))


def colour_bar(figure: Figure, image: Any, axes: Any, label: str, *, horizontal: bool = False) -> Any:
    """A colour bar beside ``axes`` (below it when ``horizontal``) with its scale in the house number format."""
    if horizontal:
        bar = figure.colorbar(image, ax=axes, orientation="horizontal", shrink=0.5, aspect=40, pad=0.02)
        bar.ax.xaxis.set_major_formatter(number_formatter())
    else:
        bar = figure.colorbar(image, ax=axes, shrink=0.9)
        bar.ax.yaxis.set_major_formatter(number_formatter())
    bar.set_label(label, fontsize=8)
    bar.ax.tick_params(labelsize=7)
    return bar


def attention_colormap() -> Colormap:
    """The page's attention scale: white (weight 0) to the palette's attention colour (weight 1)."""
    from matplotlib.colors import LinearSegmentedColormap

    return LinearSegmentedColormap.from_list("attnscope-attention", ["#ffffff", hex_colour(rgb("attention"))], N=256)


def signed_colormap() -> Colormap:
    """Signed scores as the page draws them: teal (negative) through white (0) to red (positive)."""
    from matplotlib.colors import LinearSegmentedColormap

    negative, positive = hex_colour(rgb("negative")), hex_colour(rgb("positive"))
    return LinearSegmentedColormap.from_list("attnscope-signed", [negative, "#ffffff", positive], N=257)


def sequential_colormap() -> Colormap:
    """The palette's sequential stops (head metrics)."""
    return colormap()


def matrix(
    figure: Figure,
    axes: Axes,
    values: np.ndarray,
    *,
    cmap: Colormap,
    bar_label: str,
    vmin: float | None = None,
    vmax: float | None = None,
) -> Any:
    """``values`` (rows, columns) as nearest-neighbour cells with a colour bar; returns the image."""
    image = axes.imshow(values, aspect="auto", cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
    colour_bar(figure, image, axes, bar_label)
    return image


def pool_axis(n: int, limit: int = MAX_AXIS_TOKENS) -> int:
    """The block size ``f`` that brings ``n`` tokens to at most ``limit`` cells (1: no pooling)."""
    return max(1, -(-n // limit))


def pool_vector(values: np.ndarray, factor: int, how: str = "max") -> np.ndarray:
    """(n,) -> (ceil(n/f),) the max (or mean) of each block of ``factor`` values."""
    if factor <= 1:
        return values
    cells = -(-len(values) // factor)
    padded = np.full(cells * factor, np.nan)
    padded[: len(values)] = values
    blocks = padded.reshape(cells, factor)
    return np.asarray(np.nanmax(blocks, axis=1) if how == "max" else np.nanmean(blocks, axis=1))


def pooled_labels(labels: Sequence[str], factor: int) -> list[str]:
    """The first token of each block of ``factor`` tokens (a pooled axis's labels)."""
    return [labels[i] for i in range(0, len(labels), factor)] if factor > 1 else list(labels)


def require(answer: Mapping[str, Any], key: str, kind: type | tuple[type, ...], view: str) -> Any:
    """``answer[key]`` checked to be a ``kind``; a missing or wrong field is one-line InputError."""
    if not isinstance(answer, Mapping):
        raise InputError(f"the {view} export needs a JSON object answer")
    value = answer.get(key)
    if not isinstance(value, kind):
        raise InputError(f"the answer has no usable {key!r} for the {view} export")
    return value
