"""Rules whose measure runs the model: ``attribution:METHOD`` shares, by the catalogue's methods.

:func:`attribution_scores` answers :mod:`attnscope.analysis.rules`' ``attribution`` callback: the
method's token scores for the prediction made at a query position — :func:`attnscope.methods.run.attribute`
for a position of a capture, :func:`attnscope.methods.steps.step_attribution` (once per method and
options, every step at a time) for the steps of a generation, which explains each generated token.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import numpy as np

from attnscope.analysis.rule_types import Rule, RuleProblem, RuleSet
from attnscope.analysis.rules import Attribution, RuleReport, evaluate_rules
from attnscope.capture.trace import GenerationTrace, Trace
from attnscope.errors import InputError
from attnscope.methods import catalogue

if TYPE_CHECKING:
    from collections.abc import Sequence

    from attnscope.capture.tokens import Part
    from attnscope.models.loaded import LoadedModel


def method_problems(rule_set: RuleSet) -> list[RuleProblem]:
    """The ``attribution:METHOD`` rules naming a method the catalogue lacks, one that gives no token
    scores, or options that method refuses."""
    problems = []
    for index, rule in enumerate(rule_set.rules):
        if rule.measure != "attribution":
            continue
        try:
            spec = catalogue.get(str(rule.method))
            if not spec.scores_tokens:
                names = ", ".join(catalogue.attribution_names())
                raise InputError(f"{spec.name} gives no token scores; attribution methods: {names}")
        except InputError as error:
            problems.append(RuleProblem(f"rules[{index}].measure", rule.line, str(error)))
            continue
        try:
            spec.parse_options(rule.options)
        except InputError as error:
            problems.append(RuleProblem(f"rules[{index}].options", rule.line, str(error)))
    return problems


def attribution_scores(model: LoadedModel | None, trace: Trace) -> Attribution:
    """The ``attribution`` callback of :func:`attnscope.analysis.rules.evaluate_rules` for ``trace``:
    ``(rule, query position, step) -> (tokens,)`` scores (see the module docstring)."""
    by_steps: dict[str, np.ndarray] = {}

    def scores(rule: Rule, position: int, step: int | None) -> np.ndarray:
        method = str(rule.method)
        if step is not None and isinstance(trace, GenerationTrace):
            from attnscope.methods.steps import step_attribution

            key = json.dumps([method, rule.options], sort_keys=True, default=str)
            if key not in by_steps:
                by_steps[key] = step_attribution(model, trace, method, **rule.options).scores  # (steps, tokens)
            row = [s.step for s in trace.steps].index(step)
            return by_steps[key][row]
        if model is None and "model" in catalogue.get(method).needs:
            raise InputError(f"{rule.measure_name} runs the model: evaluate with the model loaded")
        from attnscope.methods.run import attribute

        result = attribute(model, trace.text, method, query=position, trace=trace, **rule.options)
        return result.token_scores if result.token_scores is not None else result.scores  # token units

    return scores


def evaluate_with_model(
    model: LoadedModel | None,
    trace: Trace,
    rule_set: RuleSet,
    *,
    parts: Sequence[Part] | None = None,
    pii_spans: Sequence[tuple[int, int]] | None = None,
) -> RuleReport:
    """:func:`attnscope.analysis.rules.evaluate_rules` with attribution rules run by ``model`` (None:
    attention-only methods read the trace; model-running ones are noted as not evaluated). Rules naming
    methods that do not exist are refused first (:class:`InputError`)."""
    problems = method_problems(rule_set)
    if problems:
        raise InputError(problems[0].describe(rule_set.path or "<rules>"))
    if model is not None and trace.model.fingerprint not in ("", model.fingerprint):
        raise InputError(f"the trace was captured with {trace.model.spec}, not {model.spec}")
    return evaluate_rules(
        trace, rule_set, parts=parts, pii_spans=pii_spans, attribution=attribution_scores(model, trace)
    )
