"""``attribute(model, text, method)``: one token-importance vector per method, over units of any granularity.

Methods (``ATTRIBUTION_METHODS``):

- ``attention``: the query's attention row, heads averaged, layers averaged (default: all layers);
- ``rollout``: the query's row of attention rollout; ``flow``: attention flow into the query;
- ``grad-norm``, ``grad-x-input``, ``integrated-gradients``: gradients of the target
  (:mod:`attnscope.analysis.gradients`);
- ``occlusion``: the target's log-probability drop when a unit is taken out
  (:mod:`attnscope.analysis.occlusion`).

Token scores are summed into units (words, sentences, paragraphs; :mod:`attnscope.analysis.units`);
occlusion measures each unit whole. Values are raw (no rescaling). They explain the prediction
made at ``query`` (default: the last token).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from attnscope.analysis.units import Granularity, Unit, aggregate_scores, make_units
from attnscope.errors import InputError

if TYPE_CHECKING:
    from attnscope.analysis.occlusion import Scorer
    from attnscope.analysis.targets import Objective, Target
    from attnscope.capture.trace import Trace
    from attnscope.models.loaded import LoadedModel

ATTENTION_METHODS = ("attention", "rollout", "flow")
GRADIENT_METHODS = ("grad-norm", "grad-x-input", "integrated-gradients")
ATTRIBUTION_METHODS = (*ATTENTION_METHODS, *GRADIENT_METHODS, "occlusion")


@dataclass
class Attribution:
    method: str
    target: dict[str, Any]  # {"objective", "text", "ids", "query"}
    granularity: str
    units: list[Unit]
    scores: np.ndarray  # (units,) raw; NaN where a unit has no score (occlusion of inserted specials)
    token_scores: np.ndarray | None  # (tokens,) before aggregation (None for occlusion above tokens)
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The ``attnscope attribute --json`` contract."""
        return {
            "method": self.method,
            "target": {"text": self.target.get("text"), "ids": self.target.get("ids", [])},
            "objective": self.target.get("objective"),
            "query": self.target.get("query"),
            "granularity": self.granularity,
            "units": [unit.to_dict() for unit in self.units],
            "scores": [None if not np.isfinite(value) else float(value) for value in self.scores],
            "details": _plain(self.details),
        }


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value.tolist()]
    if isinstance(value, float | np.floating):
        return float(value) if np.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def _target_of_trace(trace: Trace, query: int) -> dict[str, Any]:
    if trace.predictions is None:
        return {"objective": "attention", "text": None, "ids": [], "query": query}
    best = trace.top_predictions(query, 1)[0]
    return {"objective": "next-token", "text": best.token, "ids": [best.id], "query": query, "prob": best.prob}


def attention_scores(trace: Trace, method: str, query: int, **options: Any) -> np.ndarray:
    """(tokens,) scores of an attention-based method for the query row of ``trace``."""
    from attnscope.analysis.aggregate import aggregate_attention
    from attnscope.analysis.flow import attention_flow
    from attnscope.analysis.rollout import attention_rollout

    if method == "attention":
        layers = options.get("layers", "all")
        head = options.get("head", "mean")
        return aggregate_attention(trace, layers=layers, head=head, rows=[query])[0]
    if method == "rollout":
        return attention_rollout(trace, residual=options.get("residual", 0.5))[query]
    if method == "flow":
        return attention_flow(trace, query=query, residual=options.get("residual", 0.5))
    raise InputError(f"{method!r} is not an attention method")


def attribute(
    model: LoadedModel,
    text: str,
    method: str,
    *,
    target: str | None = None,
    objective: Objective | None = None,
    granularity: Granularity = "token",
    query: int = -1,
    trace: Trace | None = None,
    scorer: Scorer | None = None,
    steps: int = 32,
    baseline: str = "mean",
    mode: str = "remove",
    **options: Any,
) -> Attribution:
    """Scores of ``method`` for ``text`` under ``model``, one per unit of ``granularity``."""
    from attnscope.capture.engine import capture
    from attnscope.capture.tokens import check_text, tokenize

    if method not in ATTRIBUTION_METHODS:
        raise InputError(f"unknown attribution method {method!r}; available: {', '.join(ATTRIBUTION_METHODS)}")
    text = check_text(text)
    if method in ATTENTION_METHODS:
        if target is not None or objective not in (None, "next-token"):
            raise InputError(
                f"{method} scores do not depend on a target; --target is for gradient and occlusion methods"
            )
        if trace is None:
            trace = capture(model, text, predict="last")
        tokens = trace.tokens
        position = int(trace.resolve_rows(query)[0])
        if trace.kind == "seq2seq":
            raise InputError("token attributions explain one input sequence; use the encoder stack of seq2seq traces")
        if position != len(tokens) - 1 and trace.predictions is not None:
            trace = capture(model, text, backend="full" if trace.backend == "full" else "qk", predict="all")
        token_scores = attention_scores(trace, method, position, **options)
        units = make_units(text, tokens, granularity)
        return Attribution(
            method,
            _target_of_trace(trace, position),
            granularity,
            units,
            aggregate_scores(token_scores, units),
            token_scores,
            {key: str(value) for key, value in options.items()},
        )

    from attnscope.analysis.targets import resolve_target

    tokens = tokenize(model.tokenizer, text)
    if not tokens:
        raise InputError("the text gives no tokens")
    resolved: Target = resolve_target(model, tokens, target=target, query=query, objective=objective)
    units = make_units(text, tokens, granularity)
    if method in GRADIENT_METHODS:
        from attnscope.analysis.gradients import gradient_attribution

        result = gradient_attribution(model, tokens, resolved, method, steps=steps, baseline=baseline)
        details = {"f": result.objective_value, **result.details}
        return Attribution(
            method,
            resolved.to_dict(),
            granularity,
            units,
            aggregate_scores(result.scores, units),
            result.scores,
            details,
        )
    from attnscope.analysis.occlusion import occlusion

    query_token = tokens[resolved.query]
    prompt_end = query_token.end if query_token.end is not None else _prompt_end(tokens, resolved.query)
    occluded = occlusion(
        text,
        units,
        resolved,
        scorer=scorer,
        model=model,
        prompt_end=prompt_end,
        mode=mode,
    )
    details = {"base_logprob": occluded.base_logprob, **occluded.details}
    if occluded.kl is not None:
        details["kl"] = occluded.kl
    return Attribution(method, resolved.to_dict(), granularity, units, occluded.scores, None, details)


def _prompt_end(tokens: list[Any], query: int) -> int:
    ends = [t.end for t in tokens[: query + 1] if t.end is not None]
    return max(ends) if ends else 0
