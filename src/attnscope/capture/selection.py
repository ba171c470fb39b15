"""What to look at — stack, layers, heads, query — parsed and resolved once, with labels that say it exactly.

The library, the CLI and the server all go through these functions, so ``--head 1,3``, ``?head=1,3``
and ``head=[1, 3]`` mean the same thing and fail with the same message.

- **head**: an index (negative from the end), ``"mean"`` or ``"max"`` over all heads, a list of
  indexes (their mean), or ``"all"`` / ``None`` (every head separately). Text forms: ``"3"``,
  ``"-1"``, ``"mean"``, ``"max"``, ``"all"``, ``"1,3"``.
- **layers**: an index, ``"all"``, an inclusive range ``"4-7"`` / ``"4:7"`` / ``(4, 7)``, or a list;
  several layers are averaged.
- **query**: a position of the stack's query tokens (negative from the end); default the last.
- **stack**: ``decoder`` (causal LMs), ``encoder`` (encoders), and for encoder–decoders ``encoder``,
  ``decoder`` or ``cross`` (default).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from attnscope.errors import InputError, OutOfRangeError

HeadSelector = int | str | Sequence[int] | None
LayerSelector = int | str | tuple[int, int] | Sequence[int]
RowSelector = int | slice | Sequence[int] | np.ndarray | None

HEAD_MODES = ("mean", "max", "all")
STACKS = ("encoder", "decoder", "cross")
_RANGE = re.compile(r"\s*(-?\d+)\s*[-:]\s*(-?\d+)\s*")


def default_stack(kind: str) -> str:
    """The stack shown when none is asked for: what the model's own predictions read."""
    return {"causal": "decoder", "masked": "encoder", "seq2seq": "cross"}[kind]


def _is_int(value: object) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def parse_head(value: object) -> HeadSelector:
    """The canonical head selector from a library value or its text form (see the module docstring)."""
    if value is None or _is_int(value):
        return None if value is None else int(value)  # type: ignore[call-overload]
    if isinstance(value, str):
        text = value.strip().lower()
        if text in HEAD_MODES:
            return None if text == "all" else text
        items = [item.strip() for item in text.split(",")]
        try:
            numbers = [int(item) for item in items]
        except ValueError:
            raise InputError(f"head must be an index, a list like 1,3, 'mean', 'max' or 'all'; got {value!r}") from None
        return numbers[0] if len(numbers) == 1 else numbers
    if isinstance(value, Sequence | np.ndarray) and not isinstance(value, bytes):
        items = list(value)
        if not items or not all(_is_int(item) for item in items):
            raise InputError(f"a list of heads must hold integers; got {value!r}")
        return [int(item) for item in items]
    raise InputError(f"head must be an index, a list of indexes, 'mean', 'max' or 'all'; got {value!r}")


def parse_layers(value: object) -> LayerSelector:
    """The canonical layer selector: an int, ``"all"``, an inclusive ``(first, last)`` or a list."""
    if _is_int(value):
        return int(value)  # type: ignore[call-overload]
    if isinstance(value, str):
        text = value.strip().lower()
        if text == "all":
            return "all"
        bounds = _RANGE.fullmatch(text)
        if bounds:
            return (int(bounds[1]), int(bounds[2]))
        if "," in text:
            return parse_layers(text.split(","))
        try:
            return int(text)
        except ValueError:
            raise InputError(
                f"layers must be an index, a range like 4-7, a list like 1,3, or 'all'; got {value!r}"
            ) from None
    if isinstance(value, tuple) and len(value) == 2 and all(_is_int(v) for v in value):
        return (int(value[0]), int(value[1]))
    if isinstance(value, Sequence | np.ndarray) and not isinstance(value, bytes):
        items = list(value)
        try:
            numbers = [int(str(item).strip()) if not _is_int(item) else int(item) for item in items]
        except ValueError:
            raise InputError(f"a list of layers must hold integers; got {value!r}") from None
        if not numbers:
            raise InputError("no layers selected")
        return numbers
    raise InputError(f"layers must be an index, a range, a list or 'all'; got {value!r}")


def resolve_index(value: object, count: int, what: str, where: str, items: str, also: str = "") -> int:
    """``value`` as an index into ``count`` items (negative from the end), or an :class:`OutOfRangeError`
    that says it: "layer 99 out of range: the decoder stack has 30 layers (0..29)"."""
    if not _is_int(value):
        raise OutOfRangeError(f"{what} must be an integer; got {value!r}")
    if not -count <= int(value) < count:  # type: ignore[call-overload]
        span = f"0..{count - 1}" if count else "none"
        raise OutOfRangeError(f"{what} {value} out of range: {where} has {count} {items} ({span}{also})")
    return int(value) % count  # type: ignore[call-overload]


def resolve_layers(count: int, captured: Sequence[int], layers: object, stack: str) -> list[int]:
    """Layer indexes of ``layers`` (see :func:`parse_layers`), each of them captured."""
    spec = parse_layers(layers)
    where = f"the {stack} stack"
    if spec == "all":
        return list(captured)
    if isinstance(spec, tuple):
        first, last = (resolve_index(x, count, "layer", where, "layers") for x in spec)
        if first > last:
            raise OutOfRangeError(f"layer range {spec[0]}..{spec[1]} is empty")
        chosen = list(range(first, last + 1))
    elif isinstance(spec, int):
        chosen = [resolve_index(spec, count, "layer", where, "layers")]
    else:
        chosen = [resolve_index(x, count, "layer", where, "layers") for x in spec]
    missing = [layer for layer in chosen if layer not in captured]
    if missing:
        raise OutOfRangeError(f"layer {missing[0]} was not captured; captured layers: {list(captured)}")
    return chosen


def resolve_heads(count: int, head: object) -> list[int]:
    """Head indexes of ``head`` (see :func:`parse_head`): all of them for mean, max and all."""
    spec = parse_head(head)
    if spec is None or spec in ("mean", "max"):
        return list(range(count))
    chosen = [spec] if isinstance(spec, int) else list(spec)
    return [resolve_index(item, count, "head", "the model", "heads", "; or mean, max") for item in chosen]


def resolve_rows(n_query: int, rows: RowSelector) -> np.ndarray:
    """(rows,) int64 query positions: None for all, an int, a slice or a list (negative allowed)."""
    if rows is None:
        return np.arange(n_query)
    if isinstance(rows, slice):
        return np.arange(n_query)[rows]
    picked = np.atleast_1d(np.asarray(rows))
    if picked.dtype.kind not in "iu":
        raise OutOfRangeError(f"query positions must be integers, got {picked.dtype}")
    if picked.size and (picked.min() < -n_query or picked.max() >= n_query):
        bad = int(picked.max()) if picked.max() >= n_query else int(picked.min())
        raise OutOfRangeError(f"query {bad} out of range: {n_query} query tokens (0..{n_query - 1})")
    return picked.astype(np.int64) % max(n_query, 1)


def layer_label(layers: Sequence[int], requested: object) -> str:
    if len(layers) == 1:
        return str(layers[0])
    spec = parse_layers(requested)
    if spec == "all":
        return f"all {len(layers)} layers (mean)"
    if list(layers) == list(range(layers[0], layers[-1] + 1)):
        return f"{layers[0]}-{layers[-1]} (mean)"
    return ", ".join(map(str, layers)) + " (mean)"


def head_label(heads: Sequence[int], head: HeadSelector) -> str:
    if head in ("mean", "max"):
        return f"{head} of {len(heads)} heads"
    if head is None:
        return f"each of {len(heads)} heads"
    if len(heads) == 1 and not isinstance(head, Sequence):
        return f"head {heads[0]}"
    return "mean of heads " + ", ".join(map(str, heads))


@dataclass(frozen=True)
class Selection:
    """One resolved view of a trace: which stack, layers, heads and query row."""

    stack: str
    layers: tuple[int, ...]
    heads: tuple[int, ...]
    head: int | str | list[int] | None  # canonical: an index, "mean", "max", a list (mean), None (each)
    query: int
    label: str  # e.g. "layer 23, mean of 14 heads, query 6"

    @property
    def layer(self) -> int | list[int]:
        return self.layers[0] if len(self.layers) == 1 else list(self.layers)

    def to_json(self) -> dict[str, Any]:
        return {"stack": self.stack, "layer": self.layer, "head": self.head, "query": self.query, "label": self.label}


def select(
    trace: Any, *, layer: object = -1, head: object = "mean", query: object = -1, stack: str | None = None
) -> Selection:
    """Resolve a view of ``trace`` (a :class:`attnscope.capture.trace.Trace`)."""
    name = trace.stack_name(stack)
    layers = resolve_layers(trace.num_layers(name), trace.captured_layers(name), layer, name)
    spec = parse_head(head)
    heads = resolve_heads(trace.num_heads(name), spec)
    canonical: int | str | list[int] | None = spec if not isinstance(spec, int) else heads[0]  # type: ignore[assignment]
    if isinstance(spec, list):
        canonical = heads
    n_query = len(trace.query_tokens(name))
    position = resolve_index(query, n_query, "query", f"the {name} stack", "query tokens")
    layer_text = layer_label(layers, layer)
    where = (
        f"layer {layer_text}"
        if len(layers) == 1
        else (layer_text if layer_text.startswith("all") else f"layers {layer_text}")
    )
    label = f"{where}, {head_label(heads, spec)}, query {position} ({name})"
    return Selection(name, tuple(layers), tuple(heads), canonical, position, label)
