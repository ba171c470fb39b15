"""The ``counterfactual`` JSON contract and its terminal text.

:func:`counterfactual_answer` runs :func:`attnscope.methods.counterfactual.counterfactual` and returns
its JSON: what ``attnscope counterfactual --json`` prints and what the web app's Counterfactual view
draws. Differences are *counterfactual minus original*, on tokens matched by characters; token
indexes are each text's own; ``pairs`` lists (original, counterfactual) partners.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from attnscope.analysis.counterfactual import row_shift
from attnscope.contracts import SCHEMA_VERSION, plain
from attnscope.governance.provenance import seal
from attnscope.render.text import quoted

if TYPE_CHECKING:
    from attnscope.analysis.edits import Edit
    from attnscope.capture.trace import Trace
    from attnscope.methods.counterfactual import AttributionShift, Counterfactual
    from attnscope.models.loaded import LoadedModel

HEAD_MEASURE = (
    "tvd: total variation distance ½ Σ|p̂ − q̂| between the query rows restricted to matched keys and "
    "renormalised; l1: Σ|p − q| over matched keys, raw weights"
)


def counterfactual_answer(
    model: LoadedModel,
    text: str,
    edits: Sequence[Edit | Mapping[str, Any]] = (),
    *,
    top_heads: int = 10,
    progress: Callable[..., None] | None = None,
    **options: Any,
) -> dict[str, Any]:
    """The ``counterfactual`` JSON of ``text`` and its edit (``options``: those of
    :func:`attnscope.methods.counterfactual.counterfactual`: swap, layer, head, query, method, top_k,
    backend)."""
    from attnscope.methods.counterfactual import counterfactual

    return counterfactual_json(counterfactual(model, text, edits, progress=progress, **options), top_heads=top_heads)


def _side(trace: Trace, query: int, prediction: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "text": trace.text,
        "tokens": [t.to_dict() for t in trace.tokens],
        "query": query,
        "prediction": prediction,
    }


def _matched(
    original: Trace, pairs: list[tuple[int, int]], before: np.ndarray, after: np.ndarray
) -> list[dict[str, Any]]:
    return [
        {
            "original": i,
            "counterfactual": j,
            "token": original.tokens[i].text,
            "before": plain(b),
            "after": plain(a),
            "shift": plain(a - b),
        }
        for (i, j), b, a in zip(pairs, before, after, strict=True)
    ]


def _attribution(result: AttributionShift, original: Trace, pairs: list[tuple[int, int]]) -> dict[str, Any]:
    (first, second), shift = result.results, result.shift
    return {
        "method": result.method,
        "target_mode": result.target_mode,
        "targets": [plain(first.target), plain(second.target)],
        "options": plain(first.options),
        "original": first.scores_by_token(),
        "counterfactual": second.scores_by_token(),
        "matched": _matched(original, pairs, shift.before, shift.after),
        "compared": plain(shift.compared),
        "spearman": plain(shift.spearman),
        "kendall": plain(shift.kendall),
        "n_compared": int(shift.compared.sum()),
        "provenance": [plain(first.provenance), plain(second.provenance)],
    }


def counterfactual_json(result: Counterfactual, *, top_heads: int = 10) -> dict[str, Any]:
    """``attnscope counterfactual --json`` (README: JSON contracts)."""
    original, changed = result.traces
    pairs = result.alignment.pairs
    before, after, _ = row_shift(result.rows[0], result.rows[1], pairs)
    matched_original = sum(float(result.rows[0][i]) for i, _ in pairs)
    matched_changed = sum(float(result.rows[1][j]) for _, j in pairs)
    predictions = result.predictions or {}
    heads = result.heads
    answer: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "result": "counterfactual",
        "model": original.model.to_dict(),
        "original": _side(original, result.queries[0], predictions.get("original")),
        "counterfactual": _side(changed, result.queries[1], predictions.get("counterfactual")),
        **result.edited.to_json(),
        "alignment": result.alignment.to_json(),
        "view": {**result.view.to_json(), "query_counterfactual": result.queries[1]},
        "prediction": None
        if not predictions
        else {
            key: predictions[key]
            for key in ("same_top", "original_top_in_counterfactual", "counterfactual_top_in_original")
        },
        "attention": {
            "original": plain(result.rows[0]),
            "counterfactual": plain(result.rows[1]),
            "matched": _matched(original, pairs, before, after),
            "unmatched_mass": {"original": 1.0 - matched_original, "counterfactual": 1.0 - matched_changed},
        },
        "difference": {
            "tokens": result.difference.tokens,
            "map": plain(np.round(result.difference.difference, 6)),
            "max_abs": float(np.abs(result.difference.difference).max()) if result.difference.difference.size else 0.0,
        },
        "heads": {
            "measure": HEAD_MEASURE,
            "tvd": plain(heads.tvd),
            "l1": plain(heads.l1),
            "unmatched_original": plain(heads.unmatched_original),
            "unmatched_counterfactual": plain(heads.unmatched_edited),
            "top": heads.ranked(top_heads),
        },
        "attribution": None if result.attribution is None else _attribution(result.attribution, original, pairs),
        "notes": list(result.notes),
        "provenance": list(result.provenance),
    }
    return seal(answer)


def counterfactual_text(body: dict[str, Any], *, rows: int = 8) -> str:
    """The terminal form: both texts and predictions, the heads that changed most, the largest
    attention shifts at the query, and the attribution shift."""
    model, view, alignment = body["model"], body["view"], body["alignment"]
    original, changed = body["original"], body["counterfactual"]
    lines = [
        f"model           {model['spec']} — {model['name']}",
        f"original        {quoted(original['text'])}",
        f"counterfactual  {quoted(changed['text'])}",
        f"edits           {len(body['changes'])} change(s): "
        + "; ".join(f"{quoted(c['old'])} → {quoted(c['new'])} at {c['start']}" for c in body["changes"][:6])
        + (" …" if len(body["changes"]) > 6 else ""),
        f"view            {view['label']} → counterfactual query {view['query_counterfactual']}",
        f"tokens          {len(alignment['pairs'])} matched; without a partner: {len(alignment['only_original'])} "
        f"original, {len(alignment['only_counterfactual'])} counterfactual",
    ]
    for name, side in (("original", original), ("counterfactual", changed)):
        if side["prediction"]:
            top = ", ".join(f"{quoted(c['token'])} {c['prob']:.4f}" for c in side["prediction"]["top"][:5])
            lines.append(f"{'predicts':<16}{top}   ({name})")
    cross = body["prediction"]
    if cross:
        a, b = cross["original_top_in_counterfactual"], cross["counterfactual_top_in_original"]
        lines.append(
            f"{'':<16}p({quoted(a['token'])} | counterfactual) = {a['prob']:.4f}; "
            f"p({quoted(b['token'])} | original) = {b['prob']:.4f}"
        )
    lines += ["", "heads whose query row changed most (TVD on matched tokens):", "  layer  head     tvd      l1"]
    lines += [f"  {h['layer']:>5}  {h['head']:>4}  {h['tvd']:.4f}  {h['l1']:.4f}" for h in body["heads"]["top"][:rows]]
    lines += ["", "largest attention shifts at the query (counterfactual − original):"]
    lines += _shift_lines(body["attention"]["matched"], rows)
    mass = body["attention"]["unmatched_mass"]
    lines.append(f"  on changed tokens: {mass['original']:.4f} before, {mass['counterfactual']:.4f} after")
    attribution = body["attribution"]
    if attribution:
        about = attribution["targets"][0].get("text")
        explains = f", explaining {quoted(about)} in both" if attribution["target_mode"] == "original" else ""
        rho = attribution["spearman"]
        agreement = "undefined" if rho is None else f"{rho:.3f}"
        lines += [
            "",
            f"attribution shift ({attribution['method']}{explains}): Spearman ρ {agreement} "
            f"over {attribution['n_compared']} matched tokens",
        ]
        lines += _shift_lines(attribution["matched"], rows)
    lines += [f"note: {note}" for note in body["notes"]]
    return "\n".join(lines)


def _shift_lines(matched: list[dict[str, Any]], rows: int) -> list[str]:
    shown = sorted((m for m in matched if m["shift"] is not None), key=lambda m: -abs(m["shift"]))[:rows]
    lines = [f"  {'token':<18} {'before':>9} {'after':>9} {'shift':>9}"]
    for m in shown:
        label = f"#{m['original']} {quoted(m['token'])}"
        lines.append(f"  {label:<18} {m['before']:9.4f} {m['after']:9.4f} {m['shift']:+9.4f}")
    return lines
