"""The report's observations: plain-language sentences from fixed rules over the report data.

The rules and their thresholds are :data:`attnscope.methods.report.THRESHOLDS` (printed in the
report); numbers are written in the house format (:mod:`attnscope.render.palette`), the sentences
in the report's language (:mod:`attnscope.render.language`; English is what the JSON keeps).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from attnscope.render.language import say
from attnscope.render.palette import fmt, fmt_prob


def _top_unit(data: dict[str, Any], method: str) -> str | None:
    scores = data["methods"][method]["scores"]
    values = [(-1e300 if s is None else s) for s in scores]
    return data["units"][int(np.argmax(values))]["text"] if values else None


def observations(data: dict[str, Any], language: str = "en") -> list[str]:
    """Plain-language observations by the rules in the module docstring, in ``language``."""
    said: list[str] = []
    limits = data["thresholds"]
    target = data.get("target") or {}
    if data.get("prediction"):
        best = data["prediction"][0]
        tone = say(language, "obs.confidently" if best["prob"] >= limits["confident"] else "obs.unconfidently")
        said.append(
            say(
                language,
                "obs.predicts",
                token=repr(best["token"]),
                tone=tone,
                p=fmt(best["prob"]),
                limit=limits["confident"],
            )
        )
    methods = list(data["methods"])
    tops = {m: _top_unit(data, m) for m in methods}
    said += [say(language, "obs.top", method=m, unit=repr(unit)) for m, unit in tops.items() if unit is not None]
    agreement = data["agreement"]
    names = agreement["methods"]
    if "attention" in names and "occlusion" in names:
        rho = agreement["spearman"][names.index("attention")][names.index("occlusion")]
        if rho is None:
            said.append(say(language, "obs.incomparable"))
        elif rho < limits["attention_vs_occlusion"]:
            said.append(say(language, "obs.unfaithful", rho=fmt(rho), limit=fmt(limits["attention_vs_occlusion"])))
        else:
            said.append(say(language, "obs.faithful", rho=fmt(rho), limit=limits["attention_vs_occlusion"]))
    agreeing = [
        f"{a}–{b}"
        for i, a in enumerate(names)
        for j, b in enumerate(names)
        if i < j and agreement["spearman"][i][j] is not None and agreement["spearman"][i][j] >= limits["agreement"]
    ]
    if agreeing:
        pairs = say(language, "obs.list").join(agreeing)
        said.append(say(language, "obs.pairs", limit=limits["agreement"], pairs=pairs))
    ig = data["methods"].get("integrated-gradients")
    if ig:
        details = ig["details"]
        span = abs(details["f_input"] - details["f_baseline"])
        if span > 0 and abs(details["delta"]) > limits["ig_delta"] * span:
            delta, allowed = fmt(abs(details["delta"])), fmt_prob(limits["ig_delta"])
            said.append(say(language, "obs.ig", delta=delta, share=allowed, span=fmt(span)))
    sink = np.array(data["heads"]["metrics"].get("sink", []), dtype=float)  # none: withheld under DP
    if sink.size:
        share = float(np.nanmean(sink >= limits["sink"]))
        said.append(say(language, "obs.sink", share=fmt_prob(share), limit=limits["sink"]))
    counts: dict[str, int] = {}
    for row in data["heads"]["labels"]:
        for label in row:
            counts[label] = counts.get(label, 0) + 1
    if counts:
        listed = say(language, "obs.list").join(f"{label} {count}" for label, count in sorted(counts.items()))
        said.append(say(language, "obs.head_types", counts=listed))
    if target.get("objective") == "loss":
        said.append(say(language, "obs.loss"))
    elif target.get("objective") and target.get("text") is not None:
        said.append(say(language, "obs.target", target=repr(target["text"]), objective=target["objective"]))
    return said
