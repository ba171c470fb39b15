"""``explain(model, text)``: every method on one text, their agreement, head metrics and observations.

The result is a :class:`Report` (``render.json.report_json`` gives its data, ``render.html`` a
self-contained page; ``attnscope report`` writes both). Observations are sentences produced by
fixed rules whose thresholds are in ``THRESHOLDS`` and are printed in the report
(:mod:`attnscope.render.observations` words them):

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
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from attnscope.attribution import schedule
from attnscope.methods.agreement import MethodComparison, compare_methods
from attnscope.methods.heads import HeadReport, measure_heads
from attnscope.progress import adapt, scaled

if TYPE_CHECKING:
    from attnscope.models.loaded import LoadedModel

THRESHOLDS = {
    "attention_vs_occlusion": 0.3,
    "agreement": 0.5,
    "sink": 0.5,
    "ig_delta": schedule.TOLERANCE,
    "confident": 0.5,
}


@dataclass
class Report:
    """What ``attnscope report`` shows: :func:`attnscope.render.json.report_json` is its data."""

    text: str
    comparison: MethodComparison
    heads: HeadReport
    thresholds: dict[str, float]
    provenance: dict[str, Any] = field(default_factory=dict)  # the report's record (from the trace's)


def explain(
    model: LoadedModel,
    text: str,
    *,
    methods: Sequence[str] | None = None,
    granularity: str = "word",
    target: str | None = None,
    objective: str | None = None,
    backend: str = "auto",
    progress: Any = None,
    **options: Any,
) -> Report:
    """Run ``methods`` (default: every token attribution method) on ``text``, compare them and
    measure every head (see the module docstring). ``objective`` is what the target-explaining methods
    explain (default: the next token; ``loss``: the text's own log-likelihood), stated in the report."""
    from attnscope.contracts import plain
    from attnscope.models.provenance import derive, utc_now

    started_at = utc_now()
    report = adapt(progress)
    comparison = compare_methods(
        model,
        text,
        methods=methods,
        granularity=granularity,
        target=target,
        objective=objective,
        backend=backend,
        progress=scaled(report, 0, 80, 100, "methods"),
        **options,
    )
    heads = measure_heads(
        model, comparison.trace, backend=backend, progress=scaled(report, 80, 20, 100, "head metrics")
    )
    record = derive(
        comparison.trace.provenance,
        started_at=started_at,
        method="report",
        method_options=plain(
            {"methods": list(comparison.results), "granularity": granularity, "thresholds": THRESHOLDS, **options}
        ),
        target=plain(comparison.target),
    )
    return Report(text, comparison, heads, dict(THRESHOLDS), record)
