"""Evaluating rules on a trace: one value per rule, compared with its threshold.

For every layer and head the rule names, a **cell** value is measured over the ``from`` rows (query
positions) and the ``to`` keys (:mod:`.rule_spans` says what selectors pick), on raw softmax weights:

- ``mass``: the sum of the row's weights on the ``to`` keys, averaged over the ``from`` rows;
- ``max``: the largest single weight any ``from`` row puts on a ``to`` key;
- ``rank``: where the best-attended ``to`` key ranks among all keys of the row (1: no key is
  attended more; ties share the better rank), averaged over the rows;
- ``entropy``: the entropy of the row in nats, averaged over the rows (``to`` is not used);
- ``attribution:METHOD``: the method's share of absolute scores on the ``to`` tokens,
  ``Σ|score(to)| / Σ|score(all)|``, for the prediction made at each ``from`` row, averaged over the
  rows; layers, heads and aggregation do not apply (scores come from the ``attribution`` callback:
  :mod:`attnscope.methods.rules` runs the catalogue's methods).

The cells are combined by ``aggregation`` (mean, max, min, sum) into the rule's value; ``where``
names the cell that gave it (max, min) or the worst cell (mean, sum: the lowest for ``>=``/``>``
rules, the highest for ``<=``/``<`` rules).

In a generation, a rule whose ``from`` is the answer or a step range is evaluated at every step on
its own (that step's query row); the rule passes when every step passes, and its value and
``where`` are those of its worst step. ``steps`` lists them all.

A rule that cannot be evaluated on this trace — a span selector (text, regex, lexicon, part, role)
or a step range picking nothing, a layer or head the model lacks, a part the text has not — is not
passed: its result has ``passed: null`` and a ``note`` (a misspelt span must not pass silently). A
``to`` class that no token of the text has (``class: pii`` on a text without personal data) is
different: no attention can go to tokens that are not there, so its ``mass`` and ``max`` are 0.0,
judged as any value, with a note saying the class is absent; its ``rank`` is undefined (not
evaluated), and so is personal data that was not looked for.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from attnscope.analysis.aggregate import resolve_layers
from attnscope.analysis.rule_spans import Context, Picked, pick
from attnscope.analysis.rule_types import Rule, RuleSet
from attnscope.capture.tokens import Part
from attnscope.capture.trace import GenerationTrace, Trace
from attnscope.errors import AttnscopeError, InputError, UnsupportedError

# (rule, query position, step or None) -> (tokens,) scores of the rule's method for that prediction
Attribution = Callable[[Rule, int, int | None], np.ndarray]
MAX_ATTRIBUTION_ROWS = 32  # an attribution rule outside a generation runs its method once per 'from' row


@dataclass
class RuleResult:
    """One rule's outcome on one trace (``passed`` None: not evaluated, see ``note``)."""

    rule: Rule
    value: float | None
    passed: bool | None
    layer: int | None = None  # the worst cell
    head: int | None = None
    step: int | None = None  # the worst step (generations)
    tokens: list[dict[str, Any]] = field(default_factory=list)  # the 'to' tokens: {index, text}
    rows: list[int] = field(default_factory=list)  # the query positions measured
    note: str | None = None
    counterfactual: dict[str, Any] | None = None  # a failed "should attend" rule: the edits removing 'to'
    steps: list[dict[str, Any]] | None = None  # per step: {step, value, passed, layer, head}

    def to_json(self) -> dict[str, Any]:
        rule = self.rule
        data: dict[str, Any] = {
            "rule": rule.name,
            "description": rule.description,
            "severity": rule.severity,
            "measure": rule.measure_name,
            "aggregation": rule.aggregation,
            "comparison": rule.comparison,
            "threshold": rule.threshold,
            "value": self.value,
            "passed": self.passed,
            "from": rule.source.to_json(),
            "to": None if rule.target is None else rule.target.to_json(),
            "where": {
                "layer": self.layer,
                "head": self.head,
                "step": self.step,
                "tokens": self.tokens,
                "rows": self.rows,
            },
            "line": rule.line,
        }
        if self.note is not None:
            data["note"] = self.note
        if self.counterfactual is not None:
            data["counterfactual"] = self.counterfactual
        if self.steps is not None:
            data["steps"] = self.steps
        return data


@dataclass
class RuleReport:
    """Every rule of a rule set evaluated on one trace."""

    rule_set: RuleSet
    results: list[RuleResult]
    trace: Trace

    def summary(self) -> dict[str, int]:
        results = self.results
        return {
            "total": len(results),
            "passed": sum(r.passed is True for r in results),
            "failed": sum(r.passed is False for r in results),
            "not_evaluated": sum(r.passed is None for r in results),
            "critical_failed": sum(r.passed is False and r.rule.severity == "critical" for r in results),
            "critical_not_evaluated": sum(r.passed is None and r.rule.severity == "critical" for r in results),
        }


def cell_values(weights: np.ndarray, target: np.ndarray | None, measure: str) -> np.ndarray:
    """(heads,) values of ``measure`` from ``(heads, rows, keys)`` weights; ``target``: (keys,) bool."""
    if measure == "entropy":
        weights = np.asarray(weights, dtype=np.float64)
        logs = np.log(weights, out=np.zeros_like(weights), where=weights > 0)
        return np.asarray(-(weights * logs).sum(axis=-1).mean(axis=-1))
    assert target is not None
    chosen = np.asarray(weights[..., target], dtype=np.float64)  # (heads, rows, to)
    if measure == "mass":
        return np.asarray(chosen.sum(axis=-1).mean(axis=-1))
    if measure == "max":  # no 'to' key (an absent class): no weight goes there
        return np.asarray(chosen.max(axis=(-1, -2)) if chosen.size else np.zeros(chosen.shape[0]))
    if measure == "rank":
        best = chosen.max(axis=-1, keepdims=True)  # (heads, rows, 1)
        return np.asarray((1 + (np.asarray(weights, dtype=np.float64) > best).sum(axis=-1)).mean(axis=-1))
    raise ValueError(f"unknown attention measure {measure!r}")


def attribution_share(scores: np.ndarray, target: np.ndarray) -> float | None:
    """``Σ|scores[target]| / Σ|scores|`` (NaN scores count as 0); None when every score is 0."""
    values = np.abs(np.nan_to_num(np.asarray(scores, dtype=np.float64)))
    total = float(values.sum())
    return None if total == 0 else float(values[target[: len(values)]].sum() / total)


def _aggregate(grid: np.ndarray, how: str) -> float:
    if how == "max":
        return float(grid.max())
    if how == "min":
        return float(grid.min())
    return float(grid.sum() if how == "sum" else grid.mean())


class _Reader:
    """Attention rows of one trace, shared by the rules that read the same (layer, rows) while the
    kept arrays stay under ``budget`` bytes."""

    def __init__(self, trace: Trace, budget: int = 256 * 2**20) -> None:
        self.trace = trace
        self.budget = budget
        self.cache: dict[tuple[int, tuple[int, ...]], np.ndarray] = {}

    def __call__(self, layer: int, rows: np.ndarray) -> np.ndarray:
        key = (layer, tuple(int(r) for r in rows))
        found = self.cache.get(key)
        if found is None:
            found = np.asarray(self.trace.attention(layer, None, rows=rows))  # (heads, rows, keys)
            if sum(a.nbytes for a in self.cache.values()) + found.nbytes <= self.budget:
                self.cache[key] = found
        return found


def _counterfactual(rule: Rule, trace: Trace, target: Picked) -> dict[str, Any] | None:
    """The edits that remove the ``to`` text of a failed "should attend" rule, in the form
    :func:`attnscope.analysis.edits.edit_from_dict` reads: ``{remove, start}`` (the first span),
    ``edits`` (one per span) and ``spans``; character offsets into the trace's text. A generation's
    answer is not removable (it is generated again): only spans in its prompt count."""
    if not rule.should_attend:
        return None
    limit = trace.prompt_chars if isinstance(trace, GenerationTrace) else len(trace.text)
    merged: list[list[int]] = []
    for start, end in sorted(target.spans):
        if end > limit:
            continue
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    if not merged:
        return None
    edits = [{"remove": trace.text[start:end], "start": start} for start, end in merged]
    return {**edits[0], "edits": edits, "spans": merged}


def _groups(source: Picked) -> list[tuple[int | None, np.ndarray]]:
    """``(step, indexes into the from rows)``: one per step for step rules, else one for all rows."""
    if source.steps is None:
        return [(None, np.arange(source.positions.size))]
    return [(step, np.array([index])) for index, step in enumerate(source.steps)]


Found = tuple[int | None, float | None, int | None, int | None]  # (step, value, worst layer, worst head)


def _measure(
    rule: Rule,
    trace: Trace,
    source: Picked,
    target: np.ndarray | None,
    reader: _Reader,
    attribution: Attribution | None,
) -> list[Found]:
    """Per group: ``(step, value, worst layer, worst head)``."""
    groups = _groups(source)
    if rule.measure == "attribution":
        if attribution is None:
            raise UnsupportedError(f"{rule.measure_name} runs the model: evaluate with the model loaded")
        assert target is not None
        if source.steps is None and source.positions.size > MAX_ATTRIBUTION_ROWS:
            raise InputError(
                f"{rule.measure_name} explains each 'from' row with its own run: {source.positions.size} rows "
                f"are more than {MAX_ATTRIBUTION_ROWS}; choose a narrower 'from'"
            )
        found: list[Found] = []
        for step, indexes in groups:
            shares = [attribution_share(attribution(rule, int(row), step), target) for row in source.positions[indexes]]
            known = [s for s in shares if s is not None]
            found.append((step, float(np.mean(known)) if known else None, None, None))
        return found
    layers = resolve_layers(trace, rule.layers)
    heads = trace.resolve_heads("all" if rule.heads is None else rule.heads)
    grid = np.empty((len(groups), len(layers), len(heads)))
    for column, layer in enumerate(layers):
        weights = reader(layer, source.positions)[heads]  # (heads, rows, keys)
        for row, (_, indexes) in enumerate(groups):
            grid[row, column] = cell_values(weights[:, indexes], target, rule.measure)
    cells_found: list[Found] = []
    for row, (step, _) in enumerate(groups):
        cells = grid[row]
        low = rule.aggregation == "min" or (rule.aggregation != "max" and rule.wants_high)
        worst = np.unravel_index(int(np.argmin(cells) if low else np.argmax(cells)), cells.shape)
        cells_found.append((step, _aggregate(cells, rule.aggregation), layers[worst[0]], heads[worst[1]]))
    return cells_found


def evaluate_rule(
    trace: Trace, rule: Rule, context: Context, *, attribution: Attribution | None = None, reader: Any = None
) -> RuleResult:
    """One rule on ``trace`` (see the module docstring)."""
    source = pick(rule.source, context, "from")
    target = None if rule.target is None else pick(rule.target, context, "to")
    shown = target if target is not None else source
    tokens = [{"index": int(i), "text": trace.tokens[i].text} for i in shown.positions]
    rows = [int(r) for r in source.positions]
    note = source.note or (target.note if target is not None else None)
    absent = target is not None and target.absent and rule.measure in ("mass", "max")  # measured: 0
    if note is not None and (source.note is not None or not absent):
        return RuleResult(rule, None, None, tokens=tokens, rows=rows, note=note)
    mask = None
    if target is not None:
        mask = np.zeros(len(trace.tokens), dtype=bool)
        mask[target.positions] = True
    try:
        found = _measure(rule, trace, source, mask, reader or _Reader(trace), attribution)
    except AttnscopeError as error:
        return RuleResult(rule, None, None, tokens=tokens, rows=rows, note=str(error))
    judged = [
        (step, value, layer, head, None if value is None else rule.passes(value)) for step, value, layer, head in found
    ]
    known = [entry for entry in judged if entry[1] is not None]
    if not known:
        return RuleResult(rule, None, None, tokens=tokens, rows=rows, note="no value: every score was 0")
    values = np.array([entry[1] for entry in known], dtype=np.float64)
    worst = known[int(np.argmin(values) if rule.wants_high else np.argmax(values))]
    step, value, layer, head, _ = worst
    passed = all(entry[4] for entry in known)
    if step is not None:
        rows = [int(source.positions[source.steps.index(step)])] if source.steps else rows
    result = RuleResult(rule, value, passed, layer, head, step, tokens, rows, note=note)
    if source.steps is not None:
        result.steps = [{"step": s, "value": v, "passed": p, "layer": la, "head": h} for s, v, la, h, p in judged]
    if not passed and target is not None:
        result.counterfactual = _counterfactual(rule, trace, target)
    return result


def evaluate_rules(
    trace: Trace,
    rule_set: RuleSet,
    *,
    parts: Sequence[Part] | None = None,
    pii_spans: Sequence[tuple[int, int]] | None = None,
    attribution: Attribution | None = None,
) -> RuleReport:
    """Every rule of ``rule_set`` on ``trace`` (a capture or a generation).

    Args:
        parts: named character spans for ``part``/``role`` selectors; default the trace's own
            (chat turns); given parts are added to them.
        pii_spans: ``(start, end)`` character spans of personal data for ``class: pii``
            (:func:`attnscope.governance.rules.check_rules` finds them); None: not looked for.
        attribution: scores for ``attribution:METHOD`` rules (:mod:`attnscope.methods.rules`).
    """
    if trace.target_tokens is not None:
        raise UnsupportedError("rules read decoder-only and encoder models; encoder-decoders are not supported yet")
    context = Context(trace, [*trace.parts, *(parts or [])], pii_spans, rule_set.lexicons)
    reader = _Reader(trace)
    results = [evaluate_rule(trace, rule, context, attribution=attribution, reader=reader) for rule in rule_set.rules]
    return RuleReport(rule_set, results, trace)
