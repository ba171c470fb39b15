"""The report's observations: plain-language sentences from fixed rules over the report data.

The rules and their thresholds are :data:`attnscope.methods.report.THRESHOLDS` (printed in the
report); numbers are written in the house format (:mod:`attnscope.render.palette`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from attnscope.render.palette import fmt, fmt_prob


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
            f"The model predicts {best['token']!r} {tone} (p = {fmt(best['prob'])}; "
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
                f"occlusion (Spearman ρ = {fmt(rho)} < {fmt(limits['attention_vs_occlusion'])})."
            )
        else:
            said.append(
                f"Attention ranks units much like occlusion does (Spearman ρ = {fmt(rho)} ≥ "
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
                f"Integrated gradients have not converged: |delta| = {fmt(abs(details['delta']))} is more than "
                f"{fmt_prob(limits['ig_delta'])} of |f(input) − f(baseline)| = {fmt(span)}; use more steps."
            )
    sink = np.array(data["heads"]["metrics"].get("sink", []), dtype=float)  # none: withheld under DP
    if sink.size:
        share = float(np.nanmean(sink >= limits["sink"]))
        said.append(
            f"{fmt_prob(share)} of heads put most of their attention on the first token "
            f"(sink mass ≥ {limits['sink']}): raw attention there says little about the text."
        )
    counts: dict[str, int] = {}
    for row in data["heads"]["labels"]:
        for label in row:
            counts[label] = counts.get(label, 0) + 1
    if counts:
        said.append("Head types: " + ", ".join(f"{label} {count}" for label, count in sorted(counts.items())) + ".")
    if target.get("objective") and target.get("text") is not None:
        said.append(f"Gradient and occlusion scores explain the target {target['text']!r} ({target['objective']}).")
    return said
