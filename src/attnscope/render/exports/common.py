"""What the trace views share: the selection of the page's controls, token labels with personal data
masked by the export's policy, the provenance footer and a table's ``meta``, and long rows pooled.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from attnscope.errors import InputError
from attnscope.render.exports.frame import (
    MAX_AXIS_TOKENS,
    ExportOptions,
    meta_of,
    pool_axis,
    provenance_line,
)

if TYPE_CHECKING:
    from attnscope.capture.selection import Selection
    from attnscope.capture.trace import Trace


@dataclass(frozen=True)
class Shown:
    """A trace as an export shows it: the resolved selection, token texts (masked) and provenance."""

    view: Selection
    query_labels: list[str]  # the stack's query tokens' texts, personal data masked
    key_labels: list[str]
    specials: list[bool]  # per key token
    provenance: dict[str, Any]  # the trace's record, with the masking done
    model: dict[str, Any]

    def footer(self, shown: str) -> str:
        return provenance_line(self.model, self.provenance, shown)

    def meta(self, name: str, shown: str) -> dict[str, Any]:
        return meta_of(name, shown, self.model, self.provenance)


def masked_tokens(trace: Trace, policy: str) -> tuple[list[str], list[str] | None, dict[str, Any]]:
    """The input's token texts, the target's (seq2seq) and the provenance, personal data masked by
    ``policy`` as a stored analysis is masked (``drop`` with personal data present: refused)."""
    from attnscope.governance.masking import mask_answer
    from attnscope.governance.privacy import PiiFoundError

    answer: dict[str, Any] = {
        "result": "analysis",
        "text": trace.text,
        "tokens": [token.to_dict() for token in trace.tokens],
        "provenance": dict(trace.provenance),
    }
    if trace.target_tokens is not None:
        answer["target_tokens"] = [token.to_dict() for token in trace.target_tokens]
    try:
        _, masked, _ = mask_answer("analysis", trace.text, answer, policy)
    except PiiFoundError as error:
        raise InputError(f"nothing exported (personal-data policy drop): {error}") from None
    target = [str(t["text"]) for t in masked["target_tokens"]] if "target_tokens" in masked else None
    return [str(t["text"]) for t in masked["tokens"]], target, masked["provenance"]


def shown(trace: Trace, options: ExportOptions, *, one_head: bool = True) -> Shown:
    """The page's selection (layer, head, query, stack) resolved on ``trace``; out of range: InputError."""
    view = trace.select(layer=options.layer, head=options.head, query=options.query, stack=options.stack)
    if one_head and view.head is None:
        raise InputError("this export shows one map: choose a head, mean or max (not all)")
    if len(view.layers) != 1:
        raise InputError("this export shows one layer: choose a layer index, not a range or all")
    inputs, targets, provenance = masked_tokens(trace, options.pii_policy)
    query_tokens = trace.query_tokens(view.stack)
    key_tokens = trace.key_tokens(view.stack)
    query_labels = inputs if query_tokens is trace.tokens or targets is None else targets
    key_labels = inputs if key_tokens is trace.tokens or targets is None else targets
    return Shown(view, query_labels, key_labels, [t.special for t in key_tokens], provenance, trace.model.to_dict())


def view_options(options: ExportOptions, view: str, defaults: dict[str, int | float]) -> dict[str, int | float]:
    """The view's own options (``options.method_options``: the graph's threshold, the Sankey's top …)
    checked: a name the view does not take, a value that is not a number, or a fraction where an
    integer is wanted is a one-line :class:`InputError` (``--option top=abc`` must not be a traceback)."""
    given = dict(options.method_options)
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise InputError(f"{unknown[0]!r} is not an option of the {view} view (its options: {', '.join(defaults)})")
    checked: dict[str, int | float] = {}
    for name, default in defaults.items():
        value = given.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
            raise InputError(f"the {view} view's option {name} must be a number; got {value!r}")
        if isinstance(default, int) and not float(value).is_integer():
            raise InputError(f"the {view} view's option {name} must be an integer; got {value!r}")
        checked[name] = int(value) if isinstance(default, int) else float(value)
    return checked


def head_words(head: Any) -> str:
    """``head 2``, ``mean of heads``, ``max of heads``, ``mean of heads 1, 3``."""
    if isinstance(head, int | np.integer):
        return f"head {int(head)}"
    if isinstance(head, list):
        return "mean of heads " + ", ".join(str(h) for h in head)
    return f"{head} of heads"


def selection_words(view: Selection, *, query: bool = True) -> str:
    """What is shown, in words: ``decoder layer 2, mean of heads, query 5``."""
    words = f"{view.stack} layer {view.layers[0]}, {head_words(view.head)}"
    return words + (f", query {view.query}" if query else "")


def attention_rows(trace: Trace, view: Selection, rows: np.ndarray) -> np.ndarray:
    """(rows, key) float64 weights of ``rows`` in ``view``'s layer, heads combined as selected."""
    from attnscope.analysis.graph import combined_rows

    return np.asarray(combined_rows(trace, view.layers[0], view.head, rows, view.stack), dtype=np.float64)


def pooled_map(trace: Trace, view: Selection, limit: int = MAX_AXIS_TOKENS) -> tuple[np.ndarray, int]:
    """The layer's whole (query, key) map, or its max over blocks of ``f × f`` tokens when a side is
    over ``limit`` tokens; returns ``(cells_q, cells_k)`` float64 and ``f``. Rows are read in chunks:
    memory stays ``O(chunk · N + cells)``."""
    n_query, n_key = len(trace.query_tokens(view.stack)), len(trace.key_tokens(view.stack))
    factor = pool_axis(max(n_query, n_key), limit)
    height, width = -(-n_query // factor), -(-n_key // factor)
    out = np.zeros((height, width))
    chunk = max(factor, (1 << 22) // max(1, n_key) // factor * factor)  # whole blocks of f rows per read
    for start in range(0, n_query, chunk):
        rows = np.arange(start, min(n_query, start + chunk))
        block = attention_rows(trace, view, rows)  # (rows, key)
        if factor > 1:
            padded = np.zeros((len(rows), width * factor))
            padded[:, :n_key] = block
            block = padded.reshape(len(rows), width, factor).max(axis=2)
            cells = rows // factor
            np.maximum.at(out, cells, block)
        else:
            out[rows] = block
    return out, factor
