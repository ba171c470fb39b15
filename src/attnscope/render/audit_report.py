"""The audit report: the data of :func:`attnscope.render.audit_data.run_audit` (masked where it
leaves the process) as document blocks — one HTML page and, on request, the same as a PDF.

Sections, in order: summary (rules passed/failed, the verdict), provenance summary, the input as
stored (masked), the rule-match log (every rule: value, threshold, where), evidence figures and the
suggested fixes for each violation, counterfactuals, the attention snapshot, the attribution, bias
measures, the stated thresholds and heuristics, and the full provenance record. Every figure has a
title, labelled axes and a colour bar or a value axis (:mod:`attnscope.render.figures`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from attnscope.render import figures
from attnscope.render.document import Block, Figure, Heading, Paragraph, Table, document_html, document_pdf
from attnscope.render.palette import fmt, fmt_prob

TITLE = "attnscope audit"
SUMMARY_FIELDS = (
    "record_id",
    "run_id",
    "started_at",
    "finished_at",
    "attnscope_version",
    "source_revision",
    "torch_version",
    "transformers_version",
    "device",
    "dtype",
    "model_spec",
    "model_name",
    "weights_sha256",
    "text_sha256",
    "text_tokens",
    "masking_policy",
    "masked_spans",
    "method_options",
    "signing_key_fingerprint",
)


def audit_html(data: dict[str, Any]) -> str:
    return document_html(TITLE, audit_blocks(data), data)


def audit_pdf(data: dict[str, Any], path: Path) -> None:
    document_pdf(TITLE, audit_blocks(data), path)


def _labels(data: dict[str, Any]) -> list[str]:
    """Token texts as axis labels: a masked value's later tokens as "…" (its label once, as the page)."""
    labels: list[str] = []
    for token in data["tokens"]:
        text = str(token.get("text", ""))
        previous: dict[str, Any] = data["tokens"][len(labels) - 1] if labels else {}
        masked = token.get("id") == -1 and previous.get("id") == -1 and previous.get("text") == text
        labels.append("…" if masked else text)
    return labels


def _where(result: dict[str, Any]) -> str:
    where = result.get("where") or {}
    cells = [f"{key} {where[key]}" for key in ("layer", "head", "step") if where.get(key) is not None]
    texts: list[str] = []
    for token in where.get("tokens") or []:  # a masked value's tokens all read as its label: once
        text = str(token.get("text", ""))
        if not (texts and text == texts[-1] and text.startswith("[")):
            texts.append(text)
    if texts:
        more = len(texts) - 8
        cells.append("tokens " + " ".join(repr(t) for t in texts[:8]) + (f" (+{more})" if more > 0 else ""))
    return ", ".join(cells) or "—"


def _status(result: dict[str, Any]) -> str:
    return {True: "passed", False: "FAILED", None: "not evaluated"}[result.get("passed")]


def audit_blocks(data: dict[str, Any]) -> list[Block]:
    model, rules = data["model"], data["rules"]
    summary = rules["summary"]
    verdict = (
        f"{summary['critical_failed']} critical rule(s) failed"
        if summary["critical_failed"]
        else "no critical rule failed"
    )
    blocks: list[Block] = [
        Paragraph(
            f"Model {model.get('spec')} ({model.get('name')}, {model.get('kind')}, {model.get('layers')} layers "
            f"× {model.get('heads')} heads). Rules file {rules['rules_file'].get('path') or '(inline)'}, SHA-256 "
            f"{rules['rules_file']['sha256']}."
        ),
        Paragraph(
            f"Verdict: {verdict} — {summary['passed']} passed, {summary['failed']} failed, "
            f"{summary['not_evaluated']} not evaluated of {summary['total']} rules.",
            testid="audit-verdict",
        ),
    ]
    blocks += _provenance_summary(data)
    blocks += [Heading("Input (as stored: personal data masked)"), Paragraph(data["text"], testid="audit-input")]
    if rules.get("generation"):
        blocks.append(Paragraph(f"Generated answer: {rules['generation']['answer']}", note=True))
    blocks += _rule_log(data)
    blocks += _violations(data)
    blocks += _counterfactuals(data)
    blocks += _snapshot(data)
    blocks += _attribution(data)
    blocks += _bias(data)
    blocks += [Heading("Thresholds and heuristics")]
    blocks.append(
        Table(
            ["rule", "measure", "aggregation", "comparison", "threshold", "severity", "line"],
            [
                [
                    r["rule"],
                    r["measure"],
                    r.get("aggregation"),
                    r["comparison"],
                    r["threshold"],
                    r["severity"],
                    r.get("line"),
                ]
                for r in rules["results"]
            ],
            testid="audit-thresholds",
        )
    )
    blocks += [Paragraph(f"{name}: {advice}", note=True) for name, advice in data["heuristics"].items()]
    record = data.get("provenance") or {}
    blocks += [Heading("Provenance (full record)")]
    blocks.append(
        Table(["field", "value"], [[key, _short(value)] for key, value in record.items()], testid="audit-provenance")
    )
    return blocks


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= 300 else text[:299] + "…"


def _provenance_summary(data: dict[str, Any]) -> list[Block]:
    record = data.get("provenance") or {}
    rows = [[key, _short(record.get(key))] for key in SUMMARY_FIELDS if key in record]
    return [Heading("Provenance summary"), Table(["field", "value"], rows, testid="audit-provenance-summary")]


def _rule_log(data: dict[str, Any]) -> list[Block]:
    results = data["rules"]["results"]
    rows, classes = [], []
    for r in results:
        value = r.get("value")
        rows.append(
            [
                r["rule"],
                r["severity"],
                _status(r),
                value,
                f"{r['comparison']} {fmt(r['threshold'])}",
                _where(r),
                r.get("note") or r.get("description") or "",
            ]
        )
        classes.append(f"{'failed ' if r.get('passed') is False else ''}{r['severity']}")
    return [
        Heading("Rule-match log"),
        Table(
            ["rule", "severity", "result", "value", "threshold", "where", "note"],
            rows,
            testid="audit-rules",
            row_classes=classes,
        ),
    ]


def _violations(data: dict[str, Any]) -> list[Block]:
    blocks: list[Block] = []
    evidence = {e["rule"]: e for e in data.get("evidence", [])}
    labels = _labels(data)
    for item in data["suggestions"]:
        result = next(r for r in data["rules"]["results"] if r["rule"] == item["rule"])
        blocks.append(Heading(f"{_status(result)}: {item['rule']} ({item['severity']})", level=3))
        if result.get("value") is not None:
            blocks.append(
                Paragraph(
                    f"{result.get('description') or item['rule']}: value {fmt(result['value'])}, "
                    f"wanted {result['comparison']} {fmt(result['threshold'])}; {_where(result)}."
                )
            )
        shown = evidence.get(item["rule"])
        if shown and shown.get("weights") is not None:
            head = "heads averaged" if shown.get("head") is None else f"head {shown['head']}"
            step = f", step {shown['step']}" if shown.get("step") is not None else ""
            title = f"{item['rule']}: attention at layer {shown['layer']}, {head}{step} (rows {_rows(shown['rows'])})"
            png = figures.token_bars(
                shown["weights"],
                labels[: len(shown["weights"])],
                title,
                "attention weight",
                marked=shown.get("marked", []),
            )
            blocks.append(
                Figure(
                    png,
                    f"Evidence for {item['rule']}: the measured row; its 'to' tokens outlined.",
                    testid="audit-evidence",
                )
            )
        blocks += [Paragraph(f"Suggested: {advice}", note=True, testid="audit-suggestion") for advice in item["advice"]]
    return ([Heading("Violations, evidence and suggested fixes"), *blocks]) if blocks else []


def _rows(rows: list[int]) -> str:
    return ", ".join(str(r) for r in rows[:6]) + (f" … ({len(rows)})" if len(rows) > 6 else "")


def _counterfactuals(data: dict[str, Any]) -> list[Block]:
    made = data.get("counterfactuals") or []
    if not made:
        return []
    blocks: list[Block] = [Heading("Counterfactuals: the span removed")]
    for item in made:
        if "error" in item:
            blocks.append(Paragraph(f"{item['rule']}: no counterfactual ({item['error']})", note=True))
            continue
        before = (item["top_original"] or [{}])[0]
        after = (item["top_counterfactual"] or [{}])[0]
        moved = ", ".join(f"L{h['layer']} H{h['head']} (TVD {fmt(h['tvd'])})" for h in item["heads"][:3])
        blocks.append(
            Paragraph(
                f"{item['rule']}: without {_removed(item)} the top prediction goes from "
                f"{before.get('token')!r} ({fmt_prob(before.get('prob'))}) to {after.get('token')!r} "
                f"({fmt_prob(after.get('prob'))}); heads that moved most: {moved or '—'}.",
                testid="audit-counterfactual",
            )
        )
    return blocks


def _removed(item: dict[str, Any]) -> str:
    """The spans a counterfactual removed, quoted (as the changes say them, masked where needed)."""
    olds = [repr(change.get("old", "")) for change in item.get("changes") or []]
    return " and ".join(olds[:4]) + (f" (+{len(olds) - 4} more)" if len(olds) > 4 else "") if olds else "the span"


def _snapshot(data: dict[str, Any]) -> list[Block]:
    snapshot = data["snapshot"]
    labels = _labels(data)
    weights = snapshot["weights"]
    last = weights[-1]
    query = snapshot["query"]
    title = f"prediction row (query {query} {labels[query]!r}), last layer, heads averaged"
    return [
        Heading("Attention snapshot"),
        Figure(
            figures.token_bars(last, labels[: len(last)], title, "attention weight", marked=[query]),
            "Where the prediction looks in the last layer.",
            testid="audit-snapshot",
        ),
        Figure(
            figures.heatmap(
                weights,
                f"prediction row (query {query}) in every layer, heads averaged",
                xlabel="key token",
                ylabel="layer",
                bar_label="attention weight",
                xlabels=labels[: len(last)],
                ylabels=[str(x) for x in snapshot["layers"]],
            ),
            "The same row through the layers.",
            testid="audit-snapshot-layers",
        ),
    ]


def _attribution(data: dict[str, Any]) -> list[Block]:
    scored = data.get("attribution")
    if not scored:
        return []
    if "error" in scored:
        return [Heading("Attribution"), Paragraph(f"{scored['method']}: {scored['error']}", note=True)]
    target = scored.get("target") or {}
    title = f"{scored['method']} per word for {target.get('text')!r}"
    signed = any(s is not None and s < 0 for s in scored["scores"])
    png = figures.token_bars(scored["scores"], [u["text"] for u in scored["units"]], title, "score", signed=signed)
    return [
        Heading("Attribution"),
        Figure(png, f"{scored['method']}: which words the prediction depends on.", testid="audit-attribution"),
    ]


def _bias(data: dict[str, Any]) -> list[Block]:
    bias = data.get("bias")
    if not bias:
        return []
    suite = bias.get("suite") or {}
    summary = bias.get("summary") or {}
    first, second = (summary.get("order") or ["first", "second"])[:2]
    confidence = summary.get("confidence", 0.95)
    blocks: list[Block] = [
        Heading(f"Bias probes: {suite.get('name')}"),
        Paragraph(
            f"{summary.get('pairs')} pairs; gap = {first} − {second}; {fmt_prob(confidence)} intervals: "
            f"{summary.get('interval')} ({summary.get('resamples')} resamples, seed {summary.get('seed')}). "
            f"{suite.get('source', '')}",
            note=True,
        ),
    ]
    rows = [
        [f"gap in {name}", *(value.get(k) for k in ("mean", "low", "high"))]
        for name, value in (summary.get("gap") or {}).items()
    ]
    if isinstance(summary.get("prefers_first"), dict):
        rows.append(
            [f"share of pairs preferring {first}", *(summary["prefers_first"].get(k) for k in ("mean", "low", "high"))]
        )
    blocks.append(Table(["measure", "mean", "low", "high"], rows, testid="audit-bias-summary"))
    pairs = bias.get("pairs") or []
    gaps = [(p.get("gap") or {}).get("logprob") for p in pairs]
    overall = (summary.get("gap") or {}).get("logprob")
    if pairs and all(g is not None for g in gaps) and overall:
        labels = [str(p.get("template", ""))[-24:] for p in pairs] + ["mean (interval)"]
        values = [float(g) for g in gaps if g is not None]
        means = [*values, overall["mean"]]
        png = figures.interval_bars(
            labels,
            means,
            [*values, overall["low"]],
            [*values, overall["high"]],
            f"log-probability gap per template ({first} − {second})",
            "Δ log p",
        )
        blocks.append(
            Figure(
                png, "Per-template gap; the last bar is the mean with its bootstrap interval.", testid="audit-bias-gaps"
            )
        )
    for role, heads in (summary.get("heads") or {}).items():
        if heads.get("mean_difference"):
            png = figures.heatmap(
                heads["mean_difference"],
                f"attention mass to the {role} term: {first} − {second}, mean over pairs",
                xlabel="head",
                ylabel="layer",
                bar_label="Δ mass",
                signed=True,
                ylabels=[str(x) for x in heads.get("layers", [])],
            )
            blocks.append(Figure(png, f"Which heads carry the difference ({role}).", testid="audit-bias-heads"))
    return blocks
