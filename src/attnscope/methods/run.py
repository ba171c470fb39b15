"""``attribute(model, text, method)``: one importance score per unit, by any method of the catalogue.

The catalogue entry of the method says what it needs; this module provides it — the trace (the one
given, or one capture), the tokens and units, the query, the target — runs the method and sums its
token scores into units (words, sentences, paragraphs; :mod:`attnscope.analysis.units`). Methods that
measure units whole (occlusion) give unit scores directly. Values are raw (no rescaling). They
explain the prediction made at ``query`` (default: the last token).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from attnscope.analysis.units import Unit, aggregate_scores, make_units
from attnscope.capture.selection import resolve_index
from attnscope.capture.tokens import Token, check_text, tokenize
from attnscope.errors import InputError, UnsupportedError
from attnscope.methods import catalogue
from attnscope.methods.spec import MethodInput, MethodOutput, MethodSpec, prompt_end
from attnscope.progress import adapt

if TYPE_CHECKING:
    from attnscope.attribution.scorers import Scorer
    from attnscope.attribution.targets import Target
    from attnscope.capture.trace import Trace
    from attnscope.models.info import ModelInfo
    from attnscope.models.loaded import LoadedModel


@dataclass
class Attribution:
    """The result of :func:`attribute`; :func:`attnscope.render.json.attribution_json` is its JSON."""

    method: str
    target: dict[str, Any]  # {"objective", "text", "ids", "query", ...}
    granularity: str
    units: list[Unit]
    scores: np.ndarray  # (units,) raw; NaN where a unit has no score (occlusion of inserted specials)
    token_scores: np.ndarray | None  # (tokens,) before aggregation (None for methods that score units whole)
    details: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    model: ModelInfo | None = None
    provenance: dict[str, Any] = field(default_factory=dict)
    n_tokens: int = 0

    def scores_by_token(self) -> list[float | None]:
        """The score of each token's unit (what the web app colours a token strip with)."""
        scores: list[float | None] = [None] * self.n_tokens
        for unit, score in zip(self.units, self.scores, strict=True):
            for index in unit.tokens:
                scores[index] = None if not np.isfinite(score) else float(score)
        return scores


def attribute(
    model: LoadedModel | None,
    text: str,
    method: str,
    *,
    target: str | None = None,
    objective: str | None = None,
    granularity: str = "token",
    query: int = -1,
    trace: Trace | None = None,
    scorer: Scorer | None = None,
    progress: Callable[..., None] | None = None,
    backend: str = "auto",
    **options: Any,
) -> Attribution:
    """Scores of ``method`` (see ``attnscope methods``) for ``text``, one per unit of ``granularity``.

    Args:
        model: the loaded model; None only with a ``trace`` (attention methods) or a black-box
            ``scorer`` (occlusion; word, sentence or paragraph units).
        target: text to explain instead of the predicted next token (gradient and occlusion methods).
        objective: ``next-token``, ``continuation`` or ``loss`` (gradient methods).
        query: the token whose prediction is explained; any token, the trace is reused.
        trace: a capture of ``text`` to reuse (attention, rollout, flow).
        scorer: occlusion through a black-box scorer instead of the in-process model.
        progress: ``progress(done, total[, stage])``; may raise ``CancelledError``.
        options: the method's options (``attnscope methods --json`` lists them).
    """
    from attnscope.models.provenance import utc_now

    started_at = utc_now()
    spec = catalogue.get(method)
    if not spec.scores_tokens:
        raise InputError(
            f"{method} is not a token attribution method; these are: {', '.join(catalogue.attribution_names())}"
        )
    text = check_text(text)
    if trace is not None and trace.text != text:
        raise InputError("the trace given is of another text")
    if trace is not None and model is not None and trace.model.fingerprint not in ("", model.fingerprint):
        raise InputError(f"the trace given was captured with another model ({trace.model.spec}), not {model.spec}")
    values = spec.parse_options(options)
    if granularity not in spec.units:
        raise InputError(f"{method} gives scores per {', '.join(spec.units)}; not per {granularity!r}")
    _check_needs(spec, model, trace, scorer)
    tokens = trace.tokens if trace is not None else _tokens(model, text)
    n_tokens = len(tokens) if tokens is not None else 0
    if spec.max_tokens is not None and n_tokens > spec.max_tokens:
        raise InputError(f"{method} is limited to {spec.max_tokens} tokens; this text has {n_tokens}")
    position = resolve_index(query, n_tokens, "query", "the text", "tokens") if tokens else 0
    resolved = _target(spec, model, tokens, text, position, target, objective, scorer)
    units = make_units(text, tokens, granularity)  # type: ignore[arg-type]
    request = MethodInput(
        spec,
        text,
        model,
        tokens,
        units,
        granularity,
        position,
        values,
        resolved,
        scorer,
        adapt(progress),
        backend,
        trace,
    )
    assert spec.run is not None
    output: MethodOutput = spec.run(request)
    if output.unit_scores is not None:
        scores = np.asarray(output.unit_scores, dtype=np.float64)
    else:
        scores = aggregate_scores(np.asarray(output.token_scores), units)
    info = _target_info(request, resolved)
    source_trace = request.given_trace
    model_info = model.info() if model is not None else (source_trace.model if source_trace is not None else None)
    used_trace = source_trace if "trace" in spec.needs else None
    return Attribution(
        method=spec.name,
        target=info,
        granularity=granularity,
        units=units,
        scores=scores,
        token_scores=None if output.token_scores is None else np.asarray(output.token_scores, dtype=np.float64),
        details=output.details,
        options=values,
        model=model_info,
        provenance=_provenance(model, used_trace, request, info, output.details, scorer, started_at),
        n_tokens=n_tokens,
    )


def _check_needs(spec: MethodSpec, model: LoadedModel | None, trace: Trace | None, scorer: Scorer | None) -> None:
    kind = model.kind if model is not None else (trace.kind if trace is not None else None)
    if kind is not None and kind not in spec.kinds:
        name = model.name if model is not None else "this trace's model"
        raise UnsupportedError(f"{spec.name} works on {', '.join(spec.kinds)} models; {name} is a {kind} model")
    if "model" in spec.needs and model is None:
        raise InputError(f"{spec.name} needs the model")
    if "trace" in spec.needs and model is None and trace is None:
        raise InputError(f"{spec.name} needs the model or a trace")
    if "scorer" in spec.needs and model is None and scorer is None:
        raise InputError(f"{spec.name} needs the model or a scorer")
    if scorer is not None and "scorer" not in spec.needs:
        raise InputError(f"a scorer is for methods that score continuations (occlusion), not {spec.name}")


def _tokens(model: LoadedModel | None, text: str) -> list[Token] | None:
    if model is None:
        return None
    tokens = tokenize(model.tokenizer, text)
    if not tokens:
        raise InputError("the text gives no tokens")
    model.check_length(len(tokens))
    return tokens


def _target(
    spec: MethodSpec,
    model: LoadedModel | None,
    tokens: list[Token] | None,
    text: str,
    query: int,
    target: str | None,
    objective: str | None,
    scorer: Scorer | None,
) -> Target | None:
    from attnscope.attribution.targets import Target, resolve_target

    if not spec.explains_target:
        if target is not None or objective not in (None, "next-token"):
            raise InputError(
                f"{spec.name} scores do not depend on a target; --target is for gradient and occlusion methods"
            )
        return None
    ask = getattr(scorer, "next_token", None)
    if scorer is not None and target is None and objective in (None, "next-token") and ask is not None:
        # a black-box scorer explains its own model's prediction (the local model, if any, gives units)
        prompt = text if tokens is None else text[: prompt_end(tokens, query)]
        predicted = check_text(ask(prompt))
        ids = [] if model is None else [t.id for t in tokenize(model.tokenizer, predicted, add_special_tokens=False)]
        return Target("next-token", query, ids, predicted, {"from": "scorer"})
    if model is not None:
        return resolve_target(model, tokens or [], target=target, query=query, objective=objective)  # type: ignore[arg-type]
    if objective == "loss":
        raise InputError("the loss objective needs the model (gradient methods)")
    if target is None:
        raise InputError("this scorer cannot say what comes next: pass the target text")
    return Target(objective or "continuation", query, [], check_text(target))


def _target_info(request: MethodInput, resolved: Target | None) -> dict[str, Any]:
    """What the scores are about: the resolved target, or (for methods without one) the model's own
    prediction at the query — the token after it for causal LMs, the token at it for masked LMs."""
    if resolved is not None:
        return {**resolved.to_dict(), **resolved.details}
    if request.model is None and request.given_trace is None:
        return {"objective": None, "text": None, "ids": [], "query": request.query}
    trace = request.trace()
    objective = "next-token" if trace.kind == "causal" else "masked-token"
    if trace.predictions is None:
        return {"objective": "attention", "text": None, "ids": [], "query": request.query}
    if trace.predictions.available(request.query):
        best = trace.top_predictions(request.query, 1)[0]
        return {"objective": objective, "text": best.token, "ids": [best.id], "query": request.query, "prob": best.prob}
    causal = request.model is not None and request.model.kind == "causal" and request.model.has_lm_head
    if not causal:  # a loaded trace, or a masked LM, without this position's prediction
        return {"objective": objective, "text": None, "ids": [], "query": request.query}
    from attnscope.attribution.targets import resolve_target

    assert request.model is not None
    found = resolve_target(request.model, request.tokens or [], query=request.query)  # one prefix forward, no capture
    return {**found.to_dict(), **found.details}


def _provenance(
    model: LoadedModel | None,
    trace: Trace | None,
    request: MethodInput,
    target: dict[str, Any],
    details: dict[str, Any],
    scorer: Scorer | None,
    started_at: str,
) -> dict[str, Any]:
    """The attribution's record: the model's facts (or the trace's, without a model), the capture's
    fields when the method read a trace, and the method's own: options, target, baseline, steps and
    completeness delta (integrated gradients' details), the black-box scorer."""
    from attnscope.contracts import plain
    from attnscope.models.provenance import capture_fields, new_record, text_sha256, tokenizer_options

    facts = model.provenance if model is not None else (trace.provenance if trace is not None else None)
    fields: dict[str, Any] = capture_fields(trace.provenance) if trace is not None else {}
    if request.tokens is not None:
        fields["text_tokens"] = len(request.tokens)
        given = request.given_trace.provenance.get("tokenizer_options") if request.given_trace is not None else None
        fields["tokenizer_options"] = given or tokenizer_options(chat=False)
    if scorer is not None:
        from attnscope.attribution.scorers.http import public_url  # no userinfo or query: no secrets recorded

        fields["scorer"] = {"type": type(scorer).__name__, "url": public_url(getattr(scorer, "url", None))}
    delta = details.get("delta")
    return new_record(
        facts,
        started_at=started_at,
        text_sha256=text_sha256(request.text),
        text_chars=len(request.text),
        method=request.spec.name,
        method_options=plain(request.options),
        target=plain(target),
        baseline=details.get("baseline"),
        steps=details.get("steps"),
        completeness_delta=None if delta is None else float(delta),
        **fields,
    )
