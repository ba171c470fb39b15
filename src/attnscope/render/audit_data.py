"""The audit: one text (or a generation after it) checked against a rule file, with the evidence a
reviewer needs — the data of ``attnscope audit`` (:mod:`attnscope.render.audit_report` writes it as
HTML and PDF).

:func:`run_audit` runs, in order:

1. the capture (or the generation, ``generate=N``) of the text with the model;
2. every rule (:func:`attnscope.governance.rules.check_rules`), its JSON as ``attnscope rules check``
   gives it;
3. an **attention snapshot**: the prediction row (the last token's, for a generation the last
   prompt token's: the row that produced the first answer token) in every layer, heads averaged;
4. **evidence** for each failed rule: the attention row it measured, at the (layer, head) where it
   did worst (heads averaged when the rule aggregates them), averaged over its ``from`` rows, with
   its ``to`` tokens marked;
5. a **counterfactual** for each failed "should attend" rule that names a span (at most
   ``counterfactuals``): the span removed, both predictions and the heads whose attention moved
   most (:func:`attnscope.render.counterfactual.counterfactual_answer`, no attribution);
6. the **attribution** of the prediction by ``grad-x-input`` (``attention`` for models without a
   next-token head), per word;
7. **bias probes** of a suite when asked (:func:`attnscope.render.bias.bias_answer`);
8. **suggested fixes** for each violation, from the stated heuristics (:data:`HEURISTICS`).

The answer is sealed with its provenance (``result: "audit"``); personal data is masked where it
leaves the process (the CLI masks before it writes, as for reports).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from attnscope.contracts import SCHEMA_VERSION, plain
from attnscope.errors import AttnscopeError, InputError

if TYPE_CHECKING:
    from attnscope.analysis.rule_types import RuleSet
    from attnscope.capture.tokens import Part
    from attnscope.capture.trace import Trace
    from attnscope.models.loaded import LoadedModel

MAX_COUNTERFACTUALS = 5

# The heuristics behind the suggested fixes: (condition, advice). Printed in every audit report.
HEURISTICS: dict[str, str] = {
    "should-attend": "A rule that wants attention (>=, >) failed: the model does not read the target span. Move it "
    "closer to where the answer is produced (attention to distant tokens decays in most LMs), repeat or quote it "
    "near the question, mark it with explicit delimiters or a chat role, and check that its tokens are the ones "
    "you expect. The counterfactual (span removed) tells data from capacity: if the prediction does not change "
    "without the span, the model does not use it — retrieval or prompt design, not a threshold, is the fix.",
    "should-not-attend": "A rule that limits attention (<=, <) failed: the model reads tokens it should not. Remove "
    "or mask the distracting span (personal data: --pii-policy mask before the prompt is built), move instructions "
    "away from it, or state explicitly what to ignore; re-check after the change.",
    "first-token": "Attention on the first token is an attention sink in most LMs (heads park attention there when "
    "nothing else is relevant): a rule on it measures the sink, not the text. Prefer rules on the text's own "
    "tokens, or attribution rules.",
    "pii": "The model attends to personal data: mask it before the text reaches the model (attnscope masks what it "
    "stores and exports, not the model's input) or drop it from the prompt.",
    "entropy": "Attention entropy out of range: very high entropy means attention is spread thin (long or "
    "repetitive input: shorten it, split it); very low means one token dominates (often the sink).",
    "attribution": "An attribution share out of range: gradients or occlusion say the prediction depends on other "
    "tokens than the rule expects. Check the target the attribution explains, and compare with attention: "
    "attention and attribution often disagree (see the agreement view).",
    "not-evaluated": "The rule could not be evaluated (its note says why: a span that matches nothing, a layer out "
    "of range, a role the text lacks): fix the rule or the input; a rule that cannot run never passes.",
}


def suggestions(result: dict[str, Any]) -> list[str]:
    """The heuristics that apply to one rule result (a failed or not evaluated one)."""
    if result.get("passed") is None:
        return [HEURISTICS["not-evaluated"]]
    target = result.get("to") or {}
    keys = []
    if str(result.get("measure", "")).startswith("attribution"):
        keys.append("attribution")
    elif result.get("measure") == "entropy":
        keys.append("entropy")
    else:
        keys.append("should-attend" if result.get("comparison") in (">=", ">") else "should-not-attend")
    if target.get("class") == "first":
        keys.append("first-token")
    if target.get("class") == "pii":
        keys.append("pii")
    return [HEURISTICS[key] for key in keys]


def run_audit(
    model: LoadedModel,
    text: str | None,
    rule_set: RuleSet,
    *,
    messages: list[dict[str, str]] | None = None,
    generate: int | None = None,
    parts: Sequence[Part] | None = None,
    bias: str | None = None,
    counterfactuals: int = 3,
    progress: Any = None,
) -> dict[str, Any]:
    """The audit of ``text`` (or chat ``messages``) against ``rule_set`` (see the module docstring).

    Args:
        generate: generate up to this many tokens (greedy) first; step rules run at every step.
        parts: named character spans for ``part`` rules.
        bias: a bias suite (a packaged name or a file) to run too.
        counterfactuals: at most this many failed rules get a counterfactual (0 … 5).
        progress: ``progress(done, total, stage)``.
    """
    from attnscope.capture.engine import capture
    from attnscope.capture.generation import generate as run_generation
    from attnscope.governance.provenance import seal
    from attnscope.governance.rules import check_rules
    from attnscope.models.provenance import derive, utc_now
    from attnscope.progress import adapt
    from attnscope.progress import report as step
    from attnscope.render.rules import rules_json

    if isinstance(counterfactuals, bool) or not isinstance(counterfactuals, int):
        raise InputError(f"counterfactuals must be a whole number, not {counterfactuals!r}")
    if not 0 <= counterfactuals <= MAX_COUNTERFACTUALS:
        raise InputError(f"counterfactuals must be 0 … {MAX_COUNTERFACTUALS} (got {counterfactuals})")
    bar = adapt(progress)
    started_at = utc_now()
    step(bar, 0, 6, "capture")
    if generate is not None:
        trace: Trace = run_generation(model, text, messages=messages, max_new_tokens=generate)
    else:
        trace = capture(model, text, messages=messages, predict="last")
    step(bar, 1, 6, "rules")
    rules = rules_json(check_rules(model, trace, rule_set, parts=parts))
    failed = [r for r in rules["results"] if r["passed"] is not True]
    step(bar, 2, 6, "attention")
    query = _prediction_row(trace)
    data: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "result": "audit",
        "model": trace.model.to_dict(),
        "text": trace.text,
        "tokens": [t.to_dict() for t in trace.tokens],
        "parts": [p.to_dict() for p in trace.parts],
        "rules": {key: rules[key] for key in ("rules_file", "generation", "results", "summary")},
        "snapshot": _snapshot(trace, query),
        "evidence": [_evidence(trace, r) for r in failed if r["passed"] is False],
        "suggestions": [{"rule": r["rule"], "severity": r["severity"], "advice": suggestions(r)} for r in failed],
        "heuristics": HEURISTICS,
    }
    step(bar, 3, 6, "counterfactuals")
    data["counterfactuals"] = _counterfactuals(model, trace, failed, counterfactuals)
    step(bar, 4, 6, "attribution")
    data["attribution"] = _attribution(model, trace, query)
    step(bar, 5, 6, "bias")
    data["bias"] = None
    if bias is not None:
        from attnscope.render.bias import bias_answer

        data["bias"] = bias_answer(model, bias)
    options = {"rules_sha256": rule_set.sha256, "rules_path": rule_set.path, "generate": generate, "bias": bias,
               "counterfactuals": counterfactuals}  # fmt: skip
    data["provenance"] = derive(trace.provenance, started_at=started_at, method="audit", method_options=options)
    step(bar, 6, 6, "done")
    return seal(plain(data))


def _prediction_row(trace: Trace) -> int:
    """The row whose prediction the audit explains: the last token, or for a generation the last
    prompt token (its row produced the first answer token)."""
    from attnscope.capture.trace import GenerationTrace

    if isinstance(trace, GenerationTrace) and trace.steps:
        return int(trace.steps[0].position) - 1
    return len(trace.tokens) - 1


def _snapshot(trace: Trace, query: int) -> dict[str, Any]:
    """(layers, keys) the prediction row in every layer, heads averaged."""
    view = trace.select(layer="all", head="mean", query=query)
    rows = [np.asarray(trace.attention(layer, None, rows=[query], stack=view.stack))[:, 0].mean(axis=0)
            for layer in view.layers]  # fmt: skip
    return {"stack": view.stack, "query": query, "head": "mean", "layers": list(view.layers),
            "weights": np.vstack(rows).tolist()}  # fmt: skip


def _evidence(trace: Trace, result: dict[str, Any]) -> dict[str, Any]:
    """The row a failed rule measured where it did worst, averaged over its rows; its tokens marked."""
    where = result.get("where") or {}
    layer, head, rows = where.get("layer"), where.get("head"), where.get("rows") or []
    marked = [t["index"] for t in where.get("tokens") or []]
    if layer is None or not rows:
        return {"rule": result["rule"], "layer": layer, "head": head, "rows": rows, "marked": marked, "weights": None}
    weights = np.asarray(trace.attention(int(layer), None if head is None else int(head), rows=rows))
    row = weights.mean(axis=0) if head is not None else weights.mean(axis=0).mean(axis=0)  # (keys,)
    return {"rule": result["rule"], "layer": layer, "head": head, "step": where.get("step"), "rows": rows,
            "marked": marked, "weights": row.tolist()}  # fmt: skip


def _counterfactuals(
    model: LoadedModel, trace: Trace, failed: list[dict[str, Any]], limit: int
) -> list[dict[str, Any]]:
    """The span of each failed should-attend rule removed: both predictions and the heads that moved."""
    from attnscope.render.counterfactual import counterfactual_answer

    made: list[dict[str, Any]] = []
    from attnscope.capture.trace import GenerationTrace

    text = trace.prompt_text if isinstance(trace, GenerationTrace) else trace.text
    original = None if isinstance(trace, GenerationTrace) else trace  # captured once: not again per rule
    for result in failed:
        hint = result.get("counterfactual")
        if len(made) >= limit or not isinstance(hint, dict) or result.get("passed") is not False:
            continue
        where = result.get("where") or {}
        edits = hint.get("edits") or [hint]  # every span the rule's "to" matched, each at its own offset
        try:
            head = "mean" if where.get("head") is None else where["head"]
            answer = counterfactual_answer(
                model, text, edits, trace=original, layer=where.get("layer", -1), head=head, method="none", top_heads=5
            )
        except AttnscopeError as error:  # a span the edit cannot remove (it was the whole text, …): said
            made.append({"rule": result["rule"], "edit": hint, "error": str(error)})
            continue
        made.append({
            "rule": result["rule"], "edit": hint, "counterfactual_text": answer["counterfactual"]["text"],
            "char_map": answer["char_map"], "changes": answer["changes"], "prediction": answer["prediction"],
            "top_original": (answer["original"]["prediction"] or {}).get("top", [])[:5],
            "top_counterfactual": (answer["counterfactual"]["prediction"] or {}).get("top", [])[:5],
            "heads": answer["heads"]["top"][:5], "view": answer["view"],
        })  # fmt: skip
    return made


def _attribution(model: LoadedModel, trace: Trace, query: int) -> dict[str, Any] | None:
    """Word scores of the prediction at ``query``: grad-x-input, or attention without a next-token head."""
    from attnscope.capture.trace import GenerationTrace
    from attnscope.methods.run import attribute

    method = "grad-x-input" if model.kind == "causal" and model.has_lm_head else "attention"
    text, used = trace.text, cast("Trace | None", trace)
    if isinstance(trace, GenerationTrace):  # the prompt's attribution for the first answer token
        text, query, used = trace.prompt_text, -1, None
    try:
        scored = attribute(model, text, method, granularity="word", query=query,
                           trace=used if method == "attention" else None)  # fmt: skip
    except AttnscopeError as error:
        return {"method": method, "error": str(error)}
    return {
        "method": method,
        "units": [{"text": u.text, "start": u.start, "end": u.end, "tokens": list(u.tokens)} for u in scored.units],
        "scores": [None if s is None or not np.isfinite(s) else float(s) for s in scored.scores],
        "target": plain(scored.target),
    }
