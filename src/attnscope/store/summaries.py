"""The one line a stored run's listing shows of its answer, per kind of answer."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def summary_of(kind: str, result: Mapping[str, Any]) -> str:
    """One line saying what a result showed, for a run's listing."""
    if kind == "generation":
        return f"{len(result['steps'])} tokens: {result['generated']['text'][:80]}"
    if kind == "attribution":
        target = result.get("target") or {}
        return f"{result['method']} for {target.get('text') or 'the prediction'}"
    if kind == "counterfactual":  # replace 'he' → 'she' (+1 more): top ' Paris' → ' Berlin'
        changes, sides = result.get("changes") or [{}], [result.get(s) or {} for s in ("original", "counterfactual")]
        old, new = changes[0].get("old", ""), changes[0].get("new", "")
        line = f"insert {new!r}" if not old else f"delete {old!r}" if not new else f"replace {old!r} → {new!r}"
        line += f" (+{len(changes) - 1} more)" if len(changes) > 1 else ""
        tops = [(side.get("prediction") or {}).get("top") or [{}] for side in sides]
        return line + (f": top {tops[0][0]['token']!r} → {tops[1][0]['token']!r}" if all(t[0] for t in tops) else "")
    if kind == "bias":  # gender-occupation-en: 32 pairs, gap log p +0.43 [+0.08, +0.77] (female − male)
        suite, summary = result.get("suite") or {}, result.get("summary") or {}
        gap, order = (summary.get("gap") or {}).get("logprob") or {}, summary.get("order") or []
        line = f"{suite.get('name', 'bias')}: {summary.get('pairs', 0)} pairs"
        if gap.get("mean") is not None:
            line += f", gap log p {gap['mean']:+.2f} [{gap['low']:+.2f}, {gap['high']:+.2f}]"
        return line + (f" ({order[0]} − {order[1]})" if len(order) == 2 else "")
    attention = result.get("attention") or {}
    return str(attention.get("label", kind))
