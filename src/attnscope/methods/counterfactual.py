"""``counterfactual(model, text, edits)``: the text and its edited twin, side by side.

Both texts are captured with the same model (every layer), their tokens aligned by characters
(:mod:`attnscope.analysis.counterfactual`), and compared at one query: by default the last token of
each text, the position whose next token is predicted. Another ``query`` is a token of the original,
compared with its partner in the edited text (refused when the edit removed it).

What comes back (:class:`Counterfactual`; :func:`attnscope.render.counterfactual.counterfactual_json`
is its JSON): both top-k predictions and each top token's probability under the other text; the
query rows of the chosen layer and head (default: the last layer, the mean of heads) and their
shift on matched keys; the matched tokens' attention maps subtracted
(:func:`attnscope.analysis.compare.trace_difference`); every head's change of the query row
(total variation distance on matched keys); and one attribution method run on both texts with the
score change per matched token and the rank agreement.

Attribution: ``method="auto"`` is ``grad-x-input`` for causal LMs (none for other kinds); ``None``
or ``"none"`` skips it. Methods with a target explain the *original's* top prediction in both texts,
so the scores answer one question; when that token does not round-trip through the tokenizer, each
text explains its own prediction (``target_mode: "own"``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from attnscope.analysis.aggregate import aggregate_attention
from attnscope.analysis.compare import TraceDifference, prompt_stack, trace_difference
from attnscope.analysis.counterfactual import HeadShift, ScoreShift, TokenAlignment, align_by_characters, head_shift
from attnscope.analysis.counterfactual import score_shift as scores_shift
from attnscope.analysis.edits import Edit, EditedText, apply_edits, as_edit
from attnscope.analysis.swaps import swap_edits
from attnscope.capture.selection import Selection
from attnscope.capture.tokens import check_text, tokenize
from attnscope.errors import InputError, UnsupportedError
from attnscope.methods import catalogue
from attnscope.progress import Progress, adapt, report, scaled

if TYPE_CHECKING:
    from attnscope.capture.trace import Trace
    from attnscope.methods.run import Attribution
    from attnscope.models.loaded import LoadedModel

DEFAULT_METHOD = "grad-x-input"


@dataclass
class AttributionShift:
    method: str
    target_mode: str | None  # "original": both explain the original's top prediction; "own": each its own;
    # None: the method has no target (attention, rollout, flow)
    results: tuple[Attribution, Attribution]  # (original, edited)
    shift: ScoreShift  # on the matched tokens


@dataclass
class Counterfactual:
    edited: EditedText
    traces: tuple[Trace, Trace]  # (original, edited)
    view: Selection  # the original's resolved view (stack, layers, heads, query)
    queries: tuple[int, int]  # the query token in each text
    alignment: TokenAlignment
    rows: tuple[np.ndarray, np.ndarray]  # the query rows of the view: (keys,) of each text
    difference: TraceDifference  # edited − original on matched × matched tokens (pairs: edited, original)
    heads: HeadShift
    predictions: dict[str, Any] | None  # tops and cross probabilities (causal LMs)
    attribution: AttributionShift | None
    notes: list[str] = field(default_factory=list)
    provenance: list[dict[str, Any]] = field(default_factory=list)  # one record per text


def collect_edits(text: str, edits: Sequence[Edit | Mapping[str, Any]] = (), swap: str | None = None) -> list[Edit]:
    """The edits given (objects or their JSON forms) and, with ``swap``, the swap table's edits."""
    chosen = [as_edit(edit) for edit in edits]
    if swap:
        chosen += swap_edits(text, swap)
    if not chosen:
        raise InputError("no edit given: replace, delete, insert or swap something")
    return chosen


def check_method(model: LoadedModel, method: str | None) -> str | None:
    """The attribution method to run (None: none), checked before anything runs."""
    causal = model.kind == "causal" and model.has_lm_head
    if method is None or method == "none" or (method == "auto" and not causal):
        return None
    name = DEFAULT_METHOD if method == "auto" else method
    spec = catalogue.get(name)
    if not spec.scores_tokens:
        names = ", ".join(catalogue.attribution_names())
        raise InputError(f"{name} is not a token attribution method; these are: {names} (or none)")
    if model.kind not in spec.kinds:
        raise UnsupportedError(f"{name} works on {', '.join(spec.kinds)} models; {model.name} is a {model.kind} model")
    return name


def counterfactual(
    model: LoadedModel,
    text: str,
    edits: Sequence[Edit | Mapping[str, Any]] = (),
    *,
    swap: str | None = None,
    layer: object = -1,
    head: object = "mean",
    query: int = -1,
    method: str | None = "auto",
    top_k: int = 10,
    backend: str = "auto",
    trace: Trace | None = None,
    progress: Callable[..., None] | None = None,
) -> Counterfactual:
    """``text`` and ``text`` edited by ``edits`` (and/or the ``swap`` table), compared (module docstring).

    Args:
        edits: :class:`Edit` objects or their JSON forms (``{"replace": "he", "with": "she"}``,
            ``{"remove": "Paris"}``, ...; :func:`attnscope.analysis.edits.edit_from_dict`).
        swap: the name of a built-in identity-term table (``gender``).
        layer, head: the view of the rows and the difference map (heads combined: an index, a
            list, mean or max).
        query: a token of the original (negative from the end); the last token is compared with
            the edited text's last token, another with its partner.
        method: an attribution method, ``auto`` or ``none`` (module docstring).
        trace: the original's capture when the caller has it (an audit): not captured again.
    """
    from attnscope.capture.engine import capture
    from attnscope.models.provenance import derive, utc_now

    started_at = utc_now()
    text = check_text(text)
    edited = apply_edits(text, collect_edits(text, edits, swap))
    name = check_method(model, method)
    bar: Progress | None = adapt(progress)
    if trace is not None and (trace.text != text or trace.model.fingerprint != model.fingerprint):
        raise InputError("trace= is not this model's capture of this text")
    original, changed = (
        trace if n == 0 and trace is not None
        else capture(model, one, backend=backend, top_k=top_k, progress=scaled(bar, 40 * n, 40, 100, "capturing"))  # type: ignore[arg-type]
        for n, one in enumerate((text, edited.text))
    )  # fmt: skip
    traces = (original, changed)
    stack = prompt_stack(original)
    view = original.select(layer=layer, head=head, query=query, stack=stack)
    if view.head is None:
        raise InputError(
            "a counterfactual compares combined rows: choose a head, a list of heads, mean or max (not all)"
        )
    alignment = align_by_characters(original.tokens, changed.tokens, edited.char_map)
    if not alignment.pairs:
        raise InputError("the two texts have no token in common: there is nothing to compare")
    queries = (view.query, _partner_query(view.query, original, changed, alignment))
    layers = list(view.layers)
    rows = (
        aggregate_attention(original, layers=layers, head=view.head, rows=[queries[0]], stack=stack)[0],
        aggregate_attention(changed, layers=layers, head=view.head, rows=[queries[1]], stack=stack)[0],
    )  # (keys,) of each text
    swapped = [(j, i) for i, j in alignment.pairs]
    difference = trace_difference(changed, original, layer=layers, head=view.head, pairs=swapped)
    heads = head_shift(_head_rows(original, queries[0], stack), _head_rows(changed, queries[1], stack), alignment.pairs)
    report(bar, 85, 100, "predictions")
    predictions = _predictions(model, traces, queries, top_k)
    notes: list[str] = []
    attribution = None
    if name is not None:
        attribution = _attribution_shift(model, traces, queries, alignment, name, notes, scaled(bar, 88, 12, 100, name))
    elif method == "auto":
        notes.append(f"no attribution: {DEFAULT_METHOD} needs a causal language model ({model.kind} model)")
    report(bar, 100, 100, "counterfactual")
    options = {
        "edits": [edit.to_dict() for edit in edited.edits],
        "swap": swap,
        "layer": view.layer,
        "head": view.head,
        "queries": list(queries),
        "attribution": name,
    }
    provenance = [
        derive(
            trace.provenance, started_at=started_at, method="counterfactual", method_options={"text": role, **options}
        )
        for trace, role in zip(traces, ("original", "counterfactual"), strict=True)
    ]
    return Counterfactual(
        edited, traces, view, queries, alignment, rows, difference, heads, predictions, attribution, notes, provenance
    )


def _partner_query(query: int, original: Trace, changed: Trace, alignment: TokenAlignment) -> int:
    if query == len(original.tokens) - 1:
        return len(changed.tokens) - 1  # the prediction position of each text
    partner = alignment.partner(query)
    if partner is None:
        token = original.tokens[query].text
        raise InputError(f"query token {query} ({token!r}) was changed by the edit: it has no counterpart")
    return partner


def _head_rows(trace: Trace, query: int, stack: str) -> np.ndarray:
    """(layers, heads, keys) the query row of every head (NaN for layers not captured)."""
    rows = np.full((trace.num_layers(stack), trace.num_heads(stack), len(trace.key_tokens(stack))), np.nan)
    for layer in trace.captured_layers(stack):
        rows[layer] = trace.attention(layer, None, rows=[query], stack=stack)[:, 0]
    return rows


def _predictions(
    model: LoadedModel, traces: tuple[Trace, ...], queries: tuple[int, int], top_k: int
) -> dict[str, Any] | None:
    """Each text's top-k after its query and, for causal LMs, each top token's probability in the other."""
    if model.kind != "causal" or not model.has_lm_head or any(t.predictions is None for t in traces):
        return None
    import torch

    from attnscope.capture.scoring import next_token_log_probs

    tops = [trace.top_predictions(q, top_k) for trace, q in zip(traces, queries, strict=True)]
    probs = [
        torch.exp(next_token_log_probs(model, trace.token_ids[: q + 1]).double()).numpy()
        for trace, q in zip(traces, queries, strict=True)
    ]

    def candidate(token_id: int, token: str, dist: np.ndarray) -> dict[str, Any]:
        return {"id": token_id, "token": token, "prob": float(dist[token_id])}

    return {
        "original": {"position": queries[0], "top": [c.to_dict() for c in tops[0]]},
        "counterfactual": {"position": queries[1], "top": [c.to_dict() for c in tops[1]]},
        "same_top": tops[0][0].id == tops[1][0].id,
        "original_top_in_counterfactual": candidate(tops[0][0].id, tops[0][0].token, probs[1]),
        "counterfactual_top_in_original": candidate(tops[1][0].id, tops[1][0].token, probs[0]),
    }


def _attribution_shift(
    model: LoadedModel,
    traces: tuple[Trace, ...],
    queries: tuple[int, int],
    alignment: TokenAlignment,
    method: str,
    notes: list[str],
    progress: Progress | None,
) -> AttributionShift:
    from attnscope.methods.run import attribute

    spec = catalogue.get(method)

    def run(index: int, **target: Any) -> Attribution:
        trace = traces[index]
        given = trace if "trace" in spec.needs else None
        part = scaled(progress, 50 * index, 50, 100, method)
        return attribute(model, trace.text, method, query=queries[index], trace=given, progress=part, **target)

    first = run(0)
    mode: str | None = None  # methods without a target (attention, rollout, flow)
    target: dict[str, Any] = {}
    ids, wanted = first.target.get("ids") or [], first.target.get("text")
    if spec.explains_target:
        mode = "own"
        again = [t.id for t in tokenize(model.tokenizer, wanted, add_special_tokens=False)] if wanted else []
        if first.target.get("objective") == "next-token" and len(ids) == 1 and again == ids:
            mode, target = "original", {"target": wanted, "objective": "next-token"}
        else:
            notes.append(
                f"the original's prediction {wanted!r} does not re-tokenize to itself: each text explains its own"
            )
    second = run(1, **target)
    pairs = alignment.pairs
    causal = traces[0].kind == "causal"  # keys after a causal query score 0 in every method
    include = np.array([not causal or (i <= queries[0] and j <= queries[1]) for i, j in pairs], dtype=bool)
    shift = scores_shift(first.scores_by_token(), second.scores_by_token(), pairs, include)
    return AttributionShift(method, mode, (first, second), shift)
