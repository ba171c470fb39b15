"""The JSON contracts: one builder per kind of result, shared by the CLI's ``--json`` and the HTTP API.

Every object has ``"schema_version"`` (:data:`attnscope.contracts.SCHEMA_VERSION`) and ``"result"``
(its kind). The README documents each shape; the tests compare CLI and API answers field by field.
Weights and probabilities are raw softmax values (no rescaling); NaN and infinities become ``null``.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import numpy as np

from attnscope.analysis.aggregate import aggregate_attention
from attnscope.analysis.heads import metric_titles
from attnscope.analysis.stats import display_rows, row_stats
from attnscope.contracts import SCHEMA_VERSION, plain
from attnscope.errors import InputError
from attnscope.governance.provenance import seal

if TYPE_CHECKING:
    from attnscope.analysis.compare import TraceDifference
    from attnscope.analysis.model_compare import ModelComparison
    from attnscope.capture.selection import Selection
    from attnscope.capture.tiles import TilePyramid
    from attnscope.capture.tokens import Part
    from attnscope.capture.trace import GenerationTrace, Trace
    from attnscope.methods.agreement import MethodComparison
    from attnscope.methods.heads import HeadReport
    from attnscope.methods.report import Report
    from attnscope.methods.run import Attribution
    from attnscope.methods.steps import StepAttribution
    from attnscope.models.info import ModelInfo


def _head(result: str, model: ModelInfo | None) -> dict[str, Any]:
    return {"schema_version": SCHEMA_VERSION, "result": result, "model": None if model is None else model.to_dict()}


def analysis_json(
    trace: Trace,
    *,
    layer: object = -1,
    head: object = "mean",
    query: object = -1,
    top_k: int = 10,
    stack: str | None = None,
    include_tokens: bool = True,
) -> dict[str, Any]:
    """``attnscope analyze --json`` and ``POST /api/analyze``: one query row and the prediction."""
    view = trace.select(layer=layer, head=head, query=query, stack=stack)
    if view.head is None:
        raise InputError("an analysis shows one row: choose a head, a list of heads, mean or max (not all)")
    row = aggregate_attention(trace, layers=list(view.layers), head=view.head, rows=[view.query], stack=view.stack)[0]
    specials = [t.special for t in trace.key_tokens(view.stack)]
    result: dict[str, Any] = {
        **_head("analysis", trace.model),
        "text": trace.text,
        "tokens": [t.to_dict() for t in trace.tokens],
        "attention": {**view.to_json(), "weights": [float(w) for w in row]},
        "prediction": _prediction(trace, view.stack, view.query, top_k),
        "stats": {basis: row_stats(shown).to_dict() for basis, shown in display_rows(row, specials).items()},
        "view": {
            "stacks": trace.stacks(),
            "layers": trace.num_layers(view.stack),
            "heads": trace.num_heads(view.stack),
            "query_tokens": len(trace.query_tokens(view.stack)),
        },
        "provenance": trace.provenance,
    }
    if trace.target_tokens is not None:
        result["target_tokens"] = [t.to_dict() for t in trace.target_tokens]
    if trace.parts:
        result["parts"] = [p.to_dict() for p in trace.parts]
    if include_tokens:  # the personal-data spans travel with the tokens (detection is not free)
        result["pii"] = pii_json(trace.text)
    result = seal(result)
    if not include_tokens:  # a layer/head/query change on the same text: the client has these
        for key in ("tokens", "target_tokens", "provenance"):
            result.pop(key, None)
    return result


def pii_json(text: str) -> list[dict[str, Any]]:
    """Where ``text`` holds personal data (:func:`attnscope.governance.privacy.find_pii`): spans with
    their kind and label, never the values — the page masks them until the user reveals them."""
    from attnscope.governance.privacy import find_pii

    return [{"start": s.start, "end": s.end, "kind": s.kind, "label": s.label} for s in find_pii(text)]


def _prediction(trace: Trace, stack: str, query: int, top_k: int) -> dict[str, Any] | None:
    """The top-k after the query when it is a position of the predicted sequence; else (an encoder
    query of an encoder-decoder) after the last decoder position."""
    if trace.predictions is None:
        return None
    predicted = trace.target_tokens if trace.target_tokens is not None else trace.tokens
    position = query if trace.query_tokens(stack) is predicted else len(predicted) - 1
    if not trace.predictions.available(position):
        return None  # not computed before the trace was saved
    return {"position": position, "top": [c.to_dict() for c in trace.top_predictions(position, top_k)]}


def units_json(units: list[Any]) -> list[dict[str, Any]]:
    return [{**unit.to_dict(), "tokens": list(unit.tokens)} for unit in units]


def attribution_json(result: Attribution) -> dict[str, Any]:
    """``attnscope attribute --json`` and ``POST /api/attribute``."""
    answer = {
        **_head("attribution", result.model),
        "method": result.method,
        "target": {"text": result.target.get("text"), "ids": result.target.get("ids", [])},
        "objective": result.target.get("objective"),
        "query": result.target.get("query"),
        "granularity": result.granularity,
        "options": plain(result.options),
        "units": units_json(result.units),
        "scores": plain(result.scores),
        "token_scores": result.scores_by_token(),
        "details": plain(result.details),
        "provenance": plain(result.provenance),
    }
    return seal(answer)


def heads_json(report: HeadReport) -> dict[str, Any]:
    """``attnscope heads --json`` and ``POST /api/heads``: ``metrics[name]`` is (layers, heads)."""
    trace = report.trace
    answer = {
        **_head("heads", trace.model),
        "text": trace.text,
        "n_tokens": len(trace.tokens),
        "stack": report.stack,
        "threshold": report.threshold,
        "metrics": {name: plain(values) for name, values in report.metrics.items()},
        "titles": {name: title for name, title in metric_titles(report.threshold).items() if name in report.metrics},
        "labels": report.labels,
        "note": report.note,
        "provenance": report.provenance or trace.provenance,
    }
    return seal(answer)


def parts_json(trace: Trace, parts: list[Part], names: list[str], mass: np.ndarray, query: Any) -> dict[str, Any]:
    """``attnscope parts --json`` and ``POST /api/parts``: mass is (layers, heads, parts + 1); ``query``
    is the resolved token index or the part's name, ``query_label`` says which."""
    if isinstance(query, str):
        label = f"part {json.dumps(query, ensure_ascii=False)}"
    else:
        query = int(trace.resolve_rows([query])[0])
        label = f"token {query} {json.dumps(trace.query_tokens()[query].text, ensure_ascii=False)}"
    result = {
        **_head("parts", trace.model),
        "text": trace.text,
        "query": query,
        "query_label": label,
        "parts": names,
        "spans": [p.to_dict() for p in parts],
        "mass": plain(np.round(mass, 6)),
        "mean_over_heads": plain(np.round(np.nanmean(mass, axis=1), 6)) if mass.size else [],
        "provenance": trace.provenance,
    }
    return seal(result, method="parts", method_options={"query": query, "parts": list(names)})


def agreement_json(comparison: MethodComparison) -> dict[str, Any]:
    """``attnscope agreement --json`` and ``POST /api/agreement``."""
    answer = {
        **_head("agreement", comparison.trace.model),
        "text": comparison.trace.text,
        "granularity": comparison.granularity,
        "units": units_json(comparison.units),
        "target": plain(comparison.target),
        "methods": {name: attribution_json(result) for name, result in comparison.results.items()},
        "skipped": comparison.skipped,
        "seconds": comparison.seconds,
        "agreement": comparison.agreement.to_json(),
        "provenance": comparison.provenance or comparison.trace.provenance,
    }
    return seal(answer)


def comparison_json(
    traces: list[Trace], summaries: list[dict[str, Any]], difference: TraceDifference | None, view: Selection
) -> dict[str, Any]:
    """``attnscope compare --json`` and ``POST /api/compare``: ``provenance`` has one record per prompt;
    the difference carries its resolved selection (stack, layer, head, label)."""
    answer = {
        **_head("comparison", traces[0].model),
        "prompts": plain(summaries),
        "difference": None if difference is None else {**view.to_json(), **difference.to_json()},
        "provenance": [trace.provenance for trace in traces],
    }
    return seal(answer)


def models_json(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """``attnscope models --json`` and ``GET /api/models``."""
    return {"schema_version": SCHEMA_VERSION, "result": "models", "models": rows}


def model_status_json(status: str, message: str, model: ModelInfo | None) -> dict[str, Any]:
    """``GET /api/model`` and ``POST /api/model``: the loading status (``idle``, ``loading``,
    ``ready``, ``failed``), its message, and the loaded model (``null`` while none is)."""
    return {**_head("model_status", model), "status": status, "message": message}


def pyramid_json(pyramid: TilePyramid) -> dict[str, Any]:
    """``GET /api/traces/{id}/pyramid``: the tile pyramid of one map, with the resolved selection
    (``head`` canonical: an index, ``mean``, ``max`` or a list; ``heads`` the heads it combines)."""
    view = pyramid.trace.select(layer=pyramid.layer, head=pyramid.head, stack=pyramid.stack)
    top = pyramid.get(pyramid.levels - 1, 0, 0)
    return {
        **_head("pyramid", pyramid.trace.model),
        **pyramid.describe(),
        "max": float(top.max()) if top.size else 0.0,
        "layer": pyramid.layer,
        "head": view.head,
        "heads": list(view.heads),
        "stack": pyramid.stack,
    }


def job_json(job_id: str, state: dict[str, Any]) -> dict[str, Any]:
    """``GET /api/jobs/{id}`` and ``POST /api/jobs/{id}/cancel``: ``done``, ``total``, ``stage``,
    ``finished``, ``cancelled`` of the job a request named (no ``model``: a job is not a result of one)."""
    return {"schema_version": SCHEMA_VERSION, "result": "job", "id": job_id, **state}


def report_json(report: Report) -> dict[str, Any]:
    """``attnscope report`` writes this beside its HTML page (and the page embeds it)."""
    from attnscope.render.observations import observations

    comparison, trace = report.comparison, report.comparison.trace
    prediction = None
    if trace.predictions is not None and trace.predictions.available(-1):
        prediction = [c.to_dict() for c in trace.top_predictions(-1, 10)]
    agreement = agreement_json(comparison)
    heads = heads_json(report.heads)
    data: dict[str, Any] = {
        **_head("report", trace.model),
        "text": report.text,
        "granularity": comparison.granularity,
        "prediction": prediction,
        **{key: agreement[key] for key in ("units", "target", "methods", "skipped", "seconds", "agreement")},
        "heads": {key: heads[key] for key in ("metrics", "titles", "labels", "note", "threshold")},
        "thresholds": report.thresholds,
        "provenance": report.provenance or trace.provenance,
    }
    data["observations"] = observations(data)
    return seal(data)


def doctor_json(machine: dict[str, Any]) -> dict[str, Any]:
    """``attnscope doctor --json``: what :func:`attnscope.models.devices.describe_machine` found."""
    return {"schema_version": SCHEMA_VERSION, "result": "doctor", **machine}


def check_view(model: Any, layer: object, head: object, stack: str | None) -> str:
    """The stack a generation's steps are shown in, with ``layer`` and ``head`` checked against
    ``model`` before anything runs (a one-line error names what is wrong)."""
    from attnscope.capture.selection import default_stack, parse_head, resolve_heads, resolve_layers

    name = stack or default_stack(model.kind)
    if parse_head(head) is None:
        raise InputError("a generation shows one row per step: choose a head, a list of heads, mean or max (not all)")
    if name == "encoder" or name not in model.arch.stacks:
        steps_in = ", ".join(s for s in sorted(model.arch.stacks) if s != "encoder")
        raise InputError(f"stack {name}: the steps are decoder positions; this {model.kind} model's: {steps_in}")
    facts = model.arch.stacks[name]
    resolve_layers(facts.layers, range(facts.layers), layer, name)
    resolve_heads(facts.heads, head)
    return name


def step_rows(
    trace: GenerationTrace, *, layer: object = -1, head: object = "mean", stack: str | None = None
) -> tuple[Selection, np.ndarray]:
    """The view and (steps, keys) each step's attention row: query ``p - 1`` (decoder or cross)."""
    view = trace.select(layer=layer, head=head, query=-1, stack=stack)
    if view.head is None:
        raise InputError("a generation shows one row per step: choose a head, a list of heads, mean or max (not all)")
    if view.stack == "encoder":
        raise InputError("the steps are decoder positions: choose the decoder or the cross stack")
    rows = [step.position - 1 for step in trace.steps]
    if not rows:
        return view, np.zeros((0, len(trace.key_tokens(view.stack))))
    return view, aggregate_attention(trace, layers=list(view.layers), head=view.head, rows=rows, stack=view.stack)


def generation_json(
    trace: GenerationTrace, *, layer: object = -1, head: object = "mean", top_k: int = 10, stack: str | None = None
) -> dict[str, Any]:
    """``attnscope generate --json``: the prompt, the generated tokens and, per step, the token, its
    probabilities, its top-k and what it attended to (the row of the query before it: keys 0 … p-1
    in the decoder, every encoder token in the cross stack)."""
    view, weights = step_rows(trace, layer=layer, head=head, stack=stack)
    label = {key: value for key, value in view.to_json().items() if key != "query"}
    label["label"] = view.label.replace(f", query {view.query} ", ", each step's query ")
    steps = []
    for step, row in zip(trace.steps, weights, strict=True):
        token = trace.predicted_tokens[step.position]
        shown = row if view.stack == "cross" else row[: step.position]  # cross: every encoder token
        entry: dict[str, Any] = {
            "step": step.step,
            "position": step.position,
            "token": {"id": token.id, "text": token.text},
            "prob": step.prob,
            "logprob_cum": step.logprob_cum,
            "top": [c.to_dict() for c in trace.step_candidates(step.step, top_k)],
            "beam": step.beam,
            "attention": {**label, "query": step.position - 1, "weights": [float(w) for w in shown]},
        }
        if step.sampled_prob is not None:
            entry["sampled_prob"] = step.sampled_prob
        if step.parent is not None:
            entry["parent"] = step.parent
        steps.append(plain(entry))
    result = {
        **_head("generation", trace.model),
        "prompt": {"text": trace.prompt_text, "tokens": [t.to_dict() for t in trace.prompt_tokens]},
        "generated": {"text": trace.generated_text, "tokens": [t.to_dict() for t in trace.generated_tokens]},
        "steps": steps,
        "stop_reason": trace.stop_reason,
        "settings": trace.settings,
        "windows": trace.windows,  # per layer: the sliding window the KV cache keeps, null for full attention
        "parts": [p.to_dict() for p in trace.parts],
        "pii": pii_json(trace.prompt_text + trace.generated_text),  # spans in prompt + answer
        "provenance": trace.provenance,
    }
    if trace.beam_tree:  # beam search: per step, the running beams in HF's order, then hypotheses that ended
        result["beam_tree"] = [
            [
                plain(
                    {
                        "rank": node.rank,
                        "token": {"id": node.token_id, "text": node.text},
                        "parent": node.parent,
                        "logprob": node.logprob,
                        "logprob_cum": node.logprob_cum,
                        "best": node.best,
                        "finished": node.finished,
                    }
                )
                for node in level
            ]
            for level in trace.beam_tree
        ]
    if trace.target_tokens is not None:  # encoder-decoders: the decoder's start token + the answer
        result["target_tokens"] = [t.to_dict() for t in trace.target_tokens]
    return seal(result)


def step_attribution_json(result: StepAttribution) -> dict[str, Any]:
    """The ``attribution`` block of a generation: per step, the scores of positions 0 … p_s − 1."""
    return {
        "method": result.method,
        "options": plain(result.options),
        "positions": result.positions,
        "scores": [plain(row[:position]) for row, position in zip(result.scores, result.positions, strict=True)],
        "details": plain(result.details),
    }


def model_comparison_json(comparison: ModelComparison) -> dict[str, Any]:
    """``attnscope compare TEXT --model A --model B --json`` (or ``--adapter``) and ``POST /api/compare/models``:
    ``model`` is A, ``model_b`` is B; differences are A − B; ``provenance`` has A's and B's capture records."""
    first, second = comparison.traces
    answer = {
        **_head("model_comparison", first.model),
        "model_b": second.model.to_dict(),
        "same_model": first.model.fingerprint == second.model.fingerprint,
        **comparison.to_json(),
        "provenance": [first.provenance, second.provenance],
    }
    return seal(answer)
