"""The rules report: its JSON contract (``attnscope rules check --json``) and its text table."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from attnscope.capture.trace import GenerationTrace
from attnscope.contracts import SCHEMA_VERSION, plain
from attnscope.governance.provenance import seal
from attnscope.render.text import display_width, pad

if TYPE_CHECKING:
    from attnscope.analysis.rules import RuleReport


def rules_json(report: RuleReport) -> dict[str, Any]:
    """``{schema_version, result: "rules", model, rules_file: {path, sha256, version}, text, tokens,
    generation, results: [...], summary, provenance}``; each result is
    ``{rule, description, severity, measure, aggregation, comparison, threshold, value, passed, from,
    to, where: {layer, head, step, tokens: [{index, text}], rows}, line, note?, counterfactual?,
    steps?}`` (``passed`` null: not evaluated, ``note`` says why). ``provenance`` is the record of the
    capture or generation the rules read."""
    trace = report.trace
    generation = None
    if isinstance(trace, GenerationTrace):
        generation = {
            "answer": trace.generated_text,
            "prompt_length": trace.prompt_length,
            "prompt_chars": trace.prompt_chars,
            "stop_reason": trace.stop_reason,
            "steps": [
                {
                    "step": s.step,
                    "position": s.position,
                    "token": {"id": s.token_id, "text": trace.tokens[s.position].text},
                }
                for s in trace.steps
            ],
        }
    return seal(
        {
            "schema_version": SCHEMA_VERSION,
            "result": "rules",
            "model": trace.model.to_dict(),
            "rules_file": report.rule_set.to_json(),
            "text": trace.text,
            "tokens": [t.to_dict() for t in trace.tokens],
            "parts": [p.to_dict() for p in trace.parts],
            "generation": generation,
            "results": [plain(result.to_json()) for result in report.results],
            "summary": report.summary(),
            "provenance": trace.provenance,
        }
    )


def _where(result: dict[str, Any]) -> str:
    where = result["where"]
    cells = [f"{key} {where[key]}" for key in ("layer", "head", "step") if where.get(key) is not None]
    return " ".join(cells)


def rules_text(body: dict[str, Any]) -> str:
    """One line per rule: severity, name, measure, value, the test, PASS/FAIL/n/a, the worst cell;
    then the notes and counterfactuals."""
    summary = body["summary"]
    source = body["rules_file"]
    model = (body.get("model") or {}).get("spec", "?")
    head = (
        f"rules {source['path'] or '(text)'} (sha256 {source['sha256'][:12]}…) on {model}: {summary['total']} rules, "
        f"{summary['passed']} passed, {summary['failed']} failed ({summary['critical_failed']} critical), "
        f"{summary['not_evaluated']} not evaluated"
    )
    results = body["results"]
    width = max([4, *(display_width(r["rule"]) for r in results)])
    columns = f"severity  {pad('rule', width)}  {pad('measure', 24)}  {'value':>9}  {'test':<10}  result  where"
    lines = [head]
    if body.get("generation"):
        lines.append(f"answer: {body['generation']['answer']!r} ({len(body['generation']['steps'])} steps)")
    lines += ["", columns]
    notes = []
    for result in results:
        value = "—" if result["value"] is None else f"{result['value']:.4f}"
        test = f"{result['comparison']} {result['threshold']:g}"
        verdict = {True: "pass", False: "FAIL", None: "n/a"}[result["passed"]]
        lines.append(
            f"{result['severity']:<8}  {pad(result['rule'], width)}  {pad(result['measure'], 24)}  {value:>9}  "
            f"{test:<10}  {verdict:<6}  {_where(result)}"
        )
        if result.get("note"):
            notes.append(f"  {result['rule']}: {result['note']}")
        if result.get("counterfactual"):
            removed = [edit["remove"] for edit in result["counterfactual"]["edits"]]
            notes.append(f"  {result['rule']}: counterfactual: remove {', '.join(map(repr, removed))}")
        failed_steps = [s["step"] for s in result.get("steps") or [] if s["passed"] is False]
        if failed_steps:
            notes.append(f"  {result['rule']}: failed at steps {', '.join(map(str, failed_steps))}")
    if notes:
        lines += ["", "notes:", *notes]
    return "\n".join(lines)
