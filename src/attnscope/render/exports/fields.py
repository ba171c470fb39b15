"""Reading a view's JSON answer for an export: checked fields, numbers as arrays, the shared title,
footer and table meta of the answer views (head atlas, agreement, timeline, parts, comparisons,
counterfactual, syntax, rules, bias).

An answer comes from the page or a file, so every field an export reads is checked here: a missing
key, a wrong type, a ragged matrix or a NaN/infinite number (JSON answers carry ``null`` where a
value is missing, never NaN) is refused with a one-line :class:`~attnscope.errors.InputError`
naming the field and the view, before anything is drawn or written.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from attnscope.errors import InputError
from attnscope.render.exports.frame import ExportOptions, meta_of, provenance_line, require


def expect(answer: Any, results: str | tuple[str, ...], view: str) -> Mapping[str, Any]:
    """``answer`` checked to be a JSON object whose ``result`` is one of ``results``."""
    wanted = (results,) if isinstance(results, str) else results
    if not isinstance(answer, Mapping):
        raise InputError(f"the {view} export needs a JSON object answer, not {type(answer).__name__}")
    result = answer.get("result")
    if result not in wanted:
        raise InputError(f"the {view} export reads a {' or '.join(wanted)} answer, not result {result!r}")
    return answer


def field(answer: Mapping[str, Any], key: str, kind: type | tuple[type, ...], view: str) -> Any:
    """``answer[key]`` of type ``kind`` (frame's :func:`require`, named for the answer views)."""
    return require(answer, key, kind, view)


def number(value: Any, what: str, view: str, *, null: bool = False) -> float:
    """A finite number (``null``: None allowed, read as NaN)."""
    if value is None and null:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InputError(f"{what} of the {view} answer is not a number: {_short(value)}")
    if not math.isfinite(float(value)):
        raise InputError(f"{what} of the {view} answer is {value!r}; answers carry null, not NaN or infinity")
    return float(value)


def numbers(value: Any, what: str, view: str, ndim: int = 1, *, null: bool = True) -> np.ndarray:
    """A (possibly nested) list of numbers as a float array of ``ndim`` dimensions; ``null`` cells
    (None) become NaN when allowed; ragged rows, strings, NaN and infinities are refused."""
    if not isinstance(value, list | tuple):
        raise InputError(f"{what} of the {view} answer is not a list: {_short(value)}")

    def walk(item: Any, depth: int) -> Any:
        if depth == ndim:
            return number(item, what, view, null=null)
        if not isinstance(item, list | tuple):
            raise InputError(f"{what} of the {view} answer is not a {ndim}-dimensional list of numbers")
        return [walk(entry, depth + 1) for entry in item]

    rows = walk(value, 0)
    try:
        array = np.array(rows, dtype=float)
    except ValueError:
        raise InputError(f"{what} of the {view} answer has rows of different lengths") from None
    if array.ndim != ndim:
        raise InputError(f"{what} of the {view} answer has rows of different lengths")
    return array


def ragged(value: Any, what: str, view: str) -> list[np.ndarray]:
    """Rows of numbers of any lengths (a generation's per-step rows), each a float array."""
    if not isinstance(value, list | tuple):
        raise InputError(f"{what} of the {view} answer is not a list: {_short(value)}")
    return [numbers(row, what, view, 1) for row in value]


def strings(value: Any, what: str, view: str) -> list[str]:
    if not isinstance(value, list | tuple) or not all(isinstance(item, str) for item in value):
        raise InputError(f"{what} of the {view} answer is not a list of texts")
    return list(value)


def objects(value: Any, what: str, view: str) -> list[Mapping[str, Any]]:
    if not isinstance(value, list | tuple) or not all(isinstance(item, Mapping) for item in value):
        raise InputError(f"{what} of the {view} answer is not a list of objects")
    return list(value)


def index(value: Any, what: str, view: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(f"{what} of the {view} answer is not a whole number: {_short(value)}")
    return int(value)


def token_texts(tokens: Any, what: str, view: str) -> list[str]:
    """The ``text`` of each token object (``{"index", "text", ...}``) or plain string."""
    if not isinstance(tokens, list | tuple):
        raise InputError(f"{what} of the {view} answer is not a list of tokens")
    texts = []
    for token in tokens:
        text = token.get("text") if isinstance(token, Mapping) else token
        if not isinstance(text, str):
            raise InputError(f"{what} of the {view} answer holds a token without text")
        texts.append(text)
    return texts


def provenance_of(answer: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The answer's provenance record (the first of a list: comparisons carry one per side)."""
    record = answer.get("provenance")
    if isinstance(record, list):
        record = record[0] if record and isinstance(record[0], Mapping) else None
    return record if isinstance(record, Mapping) else None


def model_of(answer: Mapping[str, Any]) -> Mapping[str, Any] | None:
    model = answer.get("model")
    return model if isinstance(model, Mapping) else None


def footer(answer: Mapping[str, Any], shown: str = "") -> str:
    """The provenance footer of a figure made from ``answer``."""
    return provenance_line(model_of(answer), provenance_of(answer), shown)


def title(options: ExportOptions, default: str) -> str:
    return options.title or default


def meta(view: str, shown: str, answer: Mapping[str, Any]) -> dict[str, Any]:
    """A table's meta: the view, what is shown, the model and every provenance record the answer has."""
    result = meta_of(view, shown, model_of(answer), provenance_of(answer))
    records = answer.get("provenance")
    if isinstance(records, list):  # a comparison: both sides' records travel with the numbers
        result["provenance"] = {"records": [dict(r) for r in records if isinstance(r, Mapping)]}
    return result


def width_for(items: int, per_item: float = 0.22, base: float = 3.0, cap: float = 20.0) -> float:
    """Figure width (inches) for ``items`` labelled columns: wide enough for their labels, capped."""
    return min(cap, base + per_item * items)


def short(text: str, limit: int = 24) -> str:
    """A label cut to ``limit`` characters (whitespace made visible as on the page's labels)."""
    shown = text.replace("\n", "⏎")
    return shown if len(shown) <= limit else shown[: limit - 1] + "…"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:39] + "…"


def pairs_of(value: Any, what: str, view: str) -> list[tuple[int, int]]:
    """A list of ``[i, j]`` index pairs."""
    if not isinstance(value, list | tuple):
        raise InputError(f"{what} of the {view} answer is not a list of index pairs")
    result = []
    for pair in value:
        if not isinstance(pair, Sequence) or len(pair) != 2:
            raise InputError(f"{what} of the {view} answer is not a list of index pairs")
        result.append((index(pair[0], what, view), index(pair[1], what, view)))
    return result


def top_spanning(figure: Any, grid: Any) -> Any:
    """Replace the first row of a (2, n) axes ``grid`` by one axes spanning it (a wide panel above
    smaller ones); returns the new axes."""
    spec = grid[0, 0].get_gridspec()
    for axes in grid[0]:
        axes.remove()
    return figure.add_subplot(spec[0, :])


def annotate_cells(axes: Any, values: np.ndarray, limit: int = 400) -> None:
    """Each cell's value in the house format, ink chosen for contrast, when there are at most
    ``limit`` cells (a bigger map is read through its colour bar and table)."""
    from attnscope.render.palette import fmt

    if values.size > limit:
        return
    image = axes.get_images()[-1]
    for (row, column), value in np.ndenumerate(values):
        if np.isnan(value):
            continue
        r, g, b, _ = image.cmap(image.norm(value))
        ink = "#000000" if 0.299 * r + 0.587 * g + 0.114 * b > 0.55 else "#ffffff"
        axes.text(column, row, fmt(float(value)), ha="center", va="center", fontsize=6.5, color=ink)


def mapping(owner: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    """``owner[key]`` when it is an object, else an empty one (an optional block of an answer)."""
    value = owner.get(key)
    return value if isinstance(value, Mapping) else {}


def listing(owner: Mapping[str, Any], key: str, default: list[Any] | None = None) -> list[Any]:
    """``owner[key]`` when it is a list, else ``default`` (or an empty list)."""
    value = owner.get(key)
    return list(value) if isinstance(value, list) else list(default or [])


def axes_grid(axes: Any, rows: int, columns: int) -> np.ndarray:
    """The axes of :func:`~attnscope.render.exports.frame.new_figure` as a (rows, columns) array,
    also when it returned a single Axes (a 1 × 1 grid)."""
    return np.asarray(axes, dtype=object).reshape(rows, columns)
