"""Head metrics of a trace plus the induction probe, labelled: what ``attnscope heads`` and ``POST /api/heads`` give."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from attnscope.analysis.heads import head_labels, head_metrics
from attnscope.methods import catalogue
from attnscope.progress import Progress, adapt, scaled

if TYPE_CHECKING:
    from attnscope.capture.trace import Trace
    from attnscope.models.loaded import LoadedModel


@dataclass
class HeadReport:
    trace: Trace
    stack: str
    threshold: float
    metrics: dict[str, np.ndarray]  # {metric: (layers, heads)}; NaN for layers not captured
    labels: list[list[str]]  # (layers, heads)
    note: str | None  # why induction was not measured, if it was not
    provenance: dict[str, Any] = field(default_factory=dict)  # the measurement's record (from the trace's)


def measure_heads(
    model: LoadedModel | None,
    trace: Trace,
    *,
    threshold: float = 0.01,
    stack: str | None = None,
    backend: str = "auto",
    progress: Any = None,
) -> HeadReport:
    """Head metrics of ``trace`` and, with a causal ``model``, induction scores from its probe."""
    from attnscope.models.provenance import derive, utc_now

    started_at = utc_now()
    threshold = catalogue.get("head-metrics").option("threshold").parse(threshold, "head-metrics")
    report: Progress | None = adapt(progress)
    name = trace.stack_name(stack)
    metrics = head_metrics(trace, stack=name, threshold=threshold, progress=scaled(report, 0, 80, 100, "head metrics"))
    note: str | None = "induction needs the model (this trace was loaded from a file)"
    if model is not None:
        from attnscope.attribution.probes import measure_induction

        scores, note = (
            measure_induction(model, backend=backend, progress=scaled(report, 80, 20, 100, "induction probe"))
            if name != "cross"
            else (None, "no induction probe for cross-attention")
        )
        if scores is not None:
            metrics["induction"] = scores
    if report is not None:
        report(100, 100, "head metrics")
    labels = head_labels(metrics, len(trace.key_tokens(name)))
    record = derive(
        trace.provenance,
        started_at=started_at,
        method="head-metrics",
        method_options={"threshold": float(threshold), "stack": name, "induction": "induction" in metrics},
    )
    return HeadReport(trace, name, float(threshold), metrics, labels, note, record)
