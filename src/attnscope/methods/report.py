"""``explain(model, text)``: every method on one text, their agreement, head metrics and observations.

The result is a :class:`Report` (``render.json.report_json`` gives its data, ``render.html`` a
self-contained page; ``attnscope report`` writes both). Observations are sentences produced by
fixed rules whose thresholds are in ``THRESHOLDS`` and are printed in the report:

- ``attention_vs_occlusion``: Spearman ρ between attention and occlusion below it → "attention is
  not a faithful explanation of this prediction";
- ``agreement``: pairs of methods with ρ at or above it are called "in agreement";
- ``sink``: a head is a sink head when its sink mass is at or above it;
- ``ig_delta``: integrated gradients are "not converged" when |delta| exceeds this share of
  |f(input) − f(baseline)|;
- ``confident``: a target probability at or above it is called confident.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from attnscope.methods.agreement import MethodComparison, compare_methods
from attnscope.methods.heads import HeadReport, measure_heads
from attnscope.progress import adapt, scaled

if TYPE_CHECKING:
    from attnscope.models.loaded import LoadedModel

THRESHOLDS = {
    "attention_vs_occlusion": 0.3,
    "agreement": 0.5,
    "sink": 0.5,
    "ig_delta": 0.05,
    "confident": 0.5,
}


@dataclass
class Report:
    """What ``attnscope report`` shows: :func:`attnscope.render.json.report_json` is its data."""

    text: str
    comparison: MethodComparison
    heads: HeadReport
    thresholds: dict[str, float]


def explain(
    model: LoadedModel,
    text: str,
    *,
    methods: Sequence[str] | None = None,
    granularity: str = "word",
    target: str | None = None,
    progress: Any = None,
    **options: Any,
) -> Report:
    """Run ``methods`` (default: every token attribution method) on ``text``, compare them and
    measure every head (see the module docstring)."""
    report = adapt(progress)
    comparison = compare_methods(
        model,
        text,
        methods=methods,
        granularity=granularity,
        target=target,
        progress=scaled(report, 0, 80, 100, "methods"),
        **options,
    )
    heads = measure_heads(model, comparison.trace, progress=scaled(report, 80, 20, 100, "head metrics"))
    return Report(text, comparison, heads, dict(THRESHOLDS))


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
