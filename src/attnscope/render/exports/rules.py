"""Export of a rules check (``POST /api/rules/check``, ``rules check --json``): each rule's measured
value against its threshold, failed rules first (critical, warning, info), as the Rules view lists
them.

One row per rule: a bar at the value (failed: the severity's colour; passed: the muted ink; not
evaluated: no bar, its note written), the threshold as a dashed line, each row on its own scale
(rules measure different things: a mass, a rank, a maximum), the outcome, the test and where the
value was found (layer, head, step) written beside it. The table: one row per rule with every field.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from attnscope.errors import InputError
from attnscope.render.exports import fields
from attnscope.render.exports.frame import ExportOptions, Table, finish, new_figure, number_formatter
from attnscope.render.palette import fmt, hex_colour, palette

VIEW = "rules"
TITLE = "rules check"
ANSWER_KINDS = ("rules",)
SEVERITY_ORDER = ("critical", "warning", "info")
MAX_ROWS = 60  # rules drawn (the table has every one)


class Result:
    """One rule's checked result."""

    def __init__(self, raw: Mapping[str, Any], number: int) -> None:
        where = f"results[{number}]"
        name = raw.get("rule")
        if not isinstance(name, str):
            raise InputError(f"{where} of the {VIEW} answer has no rule name")
        self.rule = name
        self.severity = str(raw.get("severity") or "warning")
        self.measure = str(raw.get("measure") or "?")
        self.aggregation = str(raw.get("aggregation") or "")
        self.comparison = str(raw.get("comparison") or "?")
        self.threshold = fields.number(raw.get("threshold"), f"{where}.threshold", VIEW)
        self.value = fields.number(raw.get("value"), f"{where}.value", VIEW, null=True)
        passed = raw.get("passed")
        if passed not in (True, False, None):
            raise InputError(f"{where}.passed of the {VIEW} answer is not true, false or null")
        self.passed: bool | None = passed
        self.note = str(raw.get("note") or "")
        located = fields.mapping(raw, "where")
        self.layer, self.head, self.step = located.get("layer"), located.get("head"), located.get("step")
        tokens = fields.listing(located, "tokens")
        self.tokens = "".join(str(t.get("text", "")) for t in tokens if isinstance(t, Mapping))

    @property
    def outcome(self) -> str:
        return {True: "passed", False: "failed", None: "not evaluated"}[self.passed]

    def place(self) -> str:
        parts = [f"{key} {value}" for key, value in (("layer", self.layer), ("head", self.head), ("step", self.step))
                 if value is not None]  # fmt: skip
        return ", ".join(parts)


def _results(answer: Mapping[str, Any]) -> list[Result]:
    answer = fields.expect(answer, ANSWER_KINDS, VIEW)
    raw = fields.objects(fields.field(answer, "results", list, VIEW), "results", VIEW)
    results = [Result(r, i) for i, r in enumerate(raw)]
    order = {False: 0, None: 1, True: 2}
    rank = {name: i for i, name in enumerate(SEVERITY_ORDER)}
    return sorted(results, key=lambda r: (order[r.passed], rank.get(r.severity, 9)))


def figure(answer: Mapping[str, Any], options: ExportOptions) -> Any:
    """A row per rule: its value against its threshold, coloured by outcome and severity."""
    results = _results(answer)
    if not results:
        raise InputError(f"the {VIEW} answer has no rule results")
    shown = results[:MAX_ROWS]
    fig, grid = new_figure(12.0, 1.0 + 0.62 * len(shown), len(shown), 1)
    grid = fields.axes_grid(grid, len(shown), 1)
    ink = palette()["ink"]
    severity = palette()["severity"]
    for axes, result in zip(grid[:, 0], shown, strict=True):
        top = max(abs(result.threshold), abs(result.value) if result.passed is not None else 0.0) * 1.2 or 1.0
        low = min(0.0, result.value * 1.2 if result.passed is not None else 0.0, result.threshold * 1.2)
        if result.passed is not None:
            colour = (
                hex_colour(tuple(severity.get(result.severity, severity["warning"])))
                if result.passed is False
                else ink["muted"]
            )
            axes.barh([0], [result.value], height=0.6, color=colour)
        axes.axvline(result.threshold, color=ink["text"], linestyle="--", linewidth=1.0)
        axes.set_xlim(low, top)
        axes.set_yticks([0], [f"{fields.short(result.rule, 28)} ({result.severity})"], fontsize=8)
        axes.tick_params(axis="x", labelsize=6.5)
        axes.xaxis.set_major_formatter(number_formatter())
        value = fmt(result.value) if result.passed is not None else "—"
        text = f"{result.outcome}: {result.measure} {result.aggregation} = {value} (must be {result.comparison} " \
               f"{fmt(result.threshold)})"  # fmt: skip
        if result.place():
            text += f" at {result.place()}"
        if result.tokens:
            text += f", to {fields.short(result.tokens, 30)!r}"
        if result.note and result.passed is None:
            text += f" — {fields.short(result.note, 60)}"
        axes.set_title(text, fontsize=7.5, loc="left", color=ink["text"])
    grid[-1, 0].set_xlabel("measured value (each rule on its own scale; dashed: the threshold)")
    fig.supylabel("rule (severity)", fontsize=9)
    summary = fields.mapping(answer, "summary")
    head = f"{summary.get('failed', '?')} of {summary.get('total', len(results))} rules failed"
    if len(results) > MAX_ROWS:
        head += f" (the first {MAX_ROWS} drawn)"
    return finish(fig, fields.title(options, f"Rules check: {head}"), fields.footer(answer, head))


def table(answer: Mapping[str, Any], options: ExportOptions) -> Table:
    """One row per rule: rule, severity, outcome, measure, aggregation, comparison, threshold, value,
    layer, head, step, tokens, note."""
    rows = [
        [
            r.rule,
            r.severity,
            r.outcome,
            r.measure,
            r.aggregation,
            r.comparison,
            r.threshold,
            None if r.passed is None else r.value,
            r.layer,
            r.head,
            r.step,
            r.tokens,
            r.note,
        ]
        for r in _results(answer)
    ]
    columns = ["rule", "severity", "outcome", "measure", "aggregation", "comparison", "threshold", "value",
               "layer", "head", "step", "tokens", "note"]  # fmt: skip
    return Table(columns, rows, fields.meta(VIEW, "every rule", answer))
