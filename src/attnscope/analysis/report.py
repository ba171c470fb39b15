"""``explain(model, text)``: every method on one text, their agreement, head metrics and observations.

The result is plain JSON data (``render.html`` turns it into a self-contained page; ``attnscope
report`` writes both). Observations are sentences produced by fixed rules whose thresholds are in
``THRESHOLDS`` and are printed in the report:

- ``attention_vs_occlusion``: Spearman ρ between attention and occlusion below it → "attention is
  not a faithful explanation of this prediction";
- ``agreement``: pairs of methods with ρ at or above it are called "in agreement";
- ``sink``: a head is a sink head when its sink mass is at or above it;
- ``ig_delta``: integrated gradients are "not converged" when |delta| exceeds this share of
  |f(input) − f(baseline)|;
- ``confident``: a target probability at or above it is called confident.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from attnscope.analysis.attribution import ATTRIBUTION_METHODS, Attribution, attribute
from attnscope.analysis.faithfulness import Agreement, rank_agreement
from attnscope.analysis.heads import measure_heads, metrics_json
from attnscope.analysis.units import Granularity, Unit
from attnscope.capture.engine import capture
from attnscope.capture.trace import Trace
from attnscope.errors import InputError, UnsupportedError
from attnscope.models.loaded import LoadedModel

THRESHOLDS = {
    "attention_vs_occlusion": 0.3,
    "agreement": 0.5,
    "sink": 0.5,
    "ig_delta": 0.05,
    "confident": 0.5,
}
DEFAULT_REPORT_METHODS = ATTRIBUTION_METHODS
FLOW_REPORT_LIMIT = 64  # tokens: attention flow above this is skipped in reports (it is the slowest method)


@dataclass
class MethodComparison:
    trace: Trace
    results: dict[str, Attribution]
    skipped: dict[str, str]  # method -> why it did not run
    seconds: dict[str, float]
    agreement: Agreement

    @property
    def units(self) -> list[Unit]:
        return next(iter(self.results.values())).units

    def to_json(self) -> dict[str, Any]:
        first = next(iter(self.results.values()))
        gradient_target = next(
            (r.target for r in self.results.values() if r.method not in ("attention", "rollout", "flow")), None
        )
        return {
            "units": [u.to_dict() for u in self.units],
            "target": gradient_target or first.target,
            "methods": {name: result.to_json() for name, result in self.results.items()},
            "skipped": self.skipped,
            "seconds": self.seconds,
            "agreement": self.agreement.to_json(),
        }


def compare_methods(
    model: LoadedModel,
    text: str,
    *,
    methods: Sequence[str] = DEFAULT_REPORT_METHODS,
    granularity: Granularity = "word",
    target: str | None = None,
    steps: int = 32,
    trace: Trace | None = None,
) -> MethodComparison:
    """Every method in ``methods`` on ``text`` (those that cannot run are listed in ``skipped``) and the
    rank agreement of their scores over the units up to the query."""
    unknown = [m for m in methods if m not in ATTRIBUTION_METHODS]
    if unknown:
        raise InputError(f"unknown methods {unknown}; available: {', '.join(ATTRIBUTION_METHODS)}")
    if trace is None:
        trace = capture(model, text, predict="last")
    results: dict[str, Attribution] = {}
    skipped: dict[str, str] = {}
    timings: dict[str, float] = {}
    for method in methods:
        if method == "flow" and len(trace.tokens) > FLOW_REPORT_LIMIT:
            skipped[method] = f"attention flow is skipped above {FLOW_REPORT_LIMIT} tokens in reports"
            continue
        begin = time.perf_counter()
        try:
            if method in ("attention", "rollout", "flow"):
                results[method] = attribute(model, text, method, granularity=granularity, trace=trace)
            else:
                results[method] = attribute(model, text, method, granularity=granularity, target=target, steps=steps)
        except UnsupportedError as error:
            skipped[method] = str(error)
            continue
        timings[method] = time.perf_counter() - begin
    if not results:
        raise InputError(f"no method could run on this model: {skipped}")
    first = next(iter(results.values()))
    query = int(first.target.get("query", len(trace.tokens) - 1) or 0)
    last_token = trace.tokens[query]
    end = last_token.end if last_token.end is not None else len(text)
    include = np.array([u.start is not None and u.start < end for u in first.units])
    agreement = rank_agreement({name: result.scores for name, result in results.items()}, include)
    return MethodComparison(trace, results, skipped, timings, agreement)


def explain(
    model: LoadedModel,
    text: str,
    *,
    methods: Sequence[str] = DEFAULT_REPORT_METHODS,
    granularity: Granularity = "word",
    target: str | None = None,
    steps: int = 32,
) -> dict[str, Any]:
    """Run ``methods`` on ``text`` and collect the report data (see the module docstring)."""
    comparison = compare_methods(model, text, methods=methods, granularity=granularity, target=target, steps=steps)
    trace = comparison.trace
    metrics, labels, note = measure_heads(model, trace)
    prediction = None
    if trace.predictions is not None:
        prediction = [c.to_dict() for c in trace.top_predictions(-1, 10)]
    data: dict[str, Any] = {
        "model": trace.model,
        "text": text,
        "granularity": granularity,
        "prediction": prediction,
        **comparison.to_json(),
        "heads": {"metrics": metrics_json(metrics), "labels": labels, "note": note},
        "thresholds": THRESHOLDS,
        "provenance": trace.provenance,
    }
    data["observations"] = observations(data)
    return data


def _top_unit(data: dict[str, Any], method: str) -> str | None:
    scores = data["methods"][method]["scores"]
    values = [(-1e300 if s is None else s) for s in scores]
    return data["units"][int(np.argmax(values))]["text"] if values else None


def observations(data: dict[str, Any]) -> list[str]:
    """Plain-language observations by the rules in the module docstring."""
    said: list[str] = []
    limits = data["thresholds"]
    target = data.get("target") or {}
    if data.get("prediction"):
        best = data["prediction"][0]
        tone = "confidently" if best["prob"] >= limits["confident"] else "without confidence"
        said.append(
            f"The model predicts {best['token']!r} {tone} (p = {best['prob']:.3f}; "
            f"'confident' means p ≥ {limits['confident']})."
        )
    methods = list(data["methods"])
    tops = {m: _top_unit(data, m) for m in methods}
    said += [f"{m}: the most important unit is {unit!r}." for m, unit in tops.items() if unit is not None]
    agreement = data["agreement"]
    names = agreement["methods"]
    if "attention" in names and "occlusion" in names:
        rho = agreement["spearman"][names.index("attention")][names.index("occlusion")]
        if rho is None:
            said.append("Attention and occlusion rankings cannot be compared (a constant score vector).")
        elif rho < limits["attention_vs_occlusion"]:
            said.append(
                f"Attention is not a faithful explanation of this prediction: its ranking agrees poorly with "
                f"occlusion (Spearman ρ = {rho:.2f} < {limits['attention_vs_occlusion']})."
            )
        else:
            said.append(
                f"Attention ranks units much like occlusion does (Spearman ρ = {rho:.2f} ≥ "
                f"{limits['attention_vs_occlusion']})."
            )
    agreeing = [
        f"{a}–{b}"
        for i, a in enumerate(names)
        for j, b in enumerate(names)
        if i < j and agreement["spearman"][i][j] is not None and agreement["spearman"][i][j] >= limits["agreement"]
    ]
    if agreeing:
        said.append(f"Method pairs in agreement (ρ ≥ {limits['agreement']}): {', '.join(agreeing)}.")
    ig = data["methods"].get("integrated-gradients")
    if ig:
        details = ig["details"]
        span = abs(details["f_input"] - details["f_baseline"])
        if span > 0 and abs(details["delta"]) > limits["ig_delta"] * span:
            said.append(
                f"Integrated gradients have not converged: |delta| = {abs(details['delta']):.3f} is more than "
                f"{limits['ig_delta']:.0%} of |f(input) − f(baseline)| = {span:.3f}; use more steps."
            )
    sink = np.array(data["heads"]["metrics"]["sink"], dtype=float)
    if sink.size:
        share = float(np.nanmean(sink >= limits["sink"]))
        said.append(
            f"{share:.0%} of heads put most of their attention on the first token "
            f"(sink mass ≥ {limits['sink']}): raw attention there says little about the text."
        )
    counts: dict[str, int] = {}
    for row in data["heads"]["labels"]:
        for label in row:
            counts[label] = counts.get(label, 0) + 1
    said.append("Head types: " + ", ".join(f"{label} {count}" for label, count in sorted(counts.items())) + ".")
    if target.get("objective") and target.get("text") is not None:
        said.append(f"Gradient and occlusion scores explain the target {target['text']!r} ({target['objective']}).")
    return said
