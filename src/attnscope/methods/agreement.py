"""Every token attribution method on one text, and how well their rankings agree.

``compare_methods`` runs the catalogue's token attribution methods (or the ones asked for) on one
capture, skips those that cannot run on this model (saying why), and computes Spearman's ρ and
Kendall's τ between their unit scores over the units up to the query
(:func:`attnscope.analysis.faithfulness.rank_agreement`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from attnscope.analysis.faithfulness import Agreement, rank_agreement
from attnscope.analysis.units import Unit
from attnscope.contracts import plain
from attnscope.errors import InputError, UnsupportedError
from attnscope.methods import catalogue
from attnscope.methods.run import Attribution, attribute
from attnscope.progress import adapt, scaled

if TYPE_CHECKING:
    from attnscope.capture.engine import Backend
    from attnscope.capture.trace import Trace
    from attnscope.models.loaded import LoadedModel

FLOW_COMPARISON_LIMIT = 64  # tokens: attention flow above this is skipped here (it is the slowest method)


@dataclass
class MethodComparison:
    trace: Trace
    granularity: str
    results: dict[str, Attribution]
    skipped: dict[str, str]  # method -> why it did not run
    seconds: dict[str, float]
    agreement: Agreement
    provenance: dict[str, Any] = field(default_factory=dict)  # the comparison's record (from the trace's)

    @property
    def units(self) -> list[Unit]:
        return next(iter(self.results.values())).units

    @property
    def target(self) -> dict[str, Any]:
        """What the target-dependent methods explain (else the attention methods' prediction)."""
        explained = [r.target for r in self.results.values() if catalogue.get(r.method).explains_target]
        return explained[0] if explained else next(iter(self.results.values())).target


def compare_methods(
    model: LoadedModel,
    text: str,
    *,
    methods: Sequence[str] | None = None,
    granularity: str = "word",
    target: str | None = None,
    objective: str | None = None,
    query: int = -1,
    trace: Trace | None = None,
    backend: str = "auto",
    progress: Any = None,
    **options: Any,
) -> MethodComparison:
    """Every method in ``methods`` (default: all token attribution methods) on ``text``, explaining the
    prediction after token ``query``; ``options`` go to the methods that have them (``steps`` to
    integrated gradients, ...); ``backend`` is the capture's when no ``trace`` is given. ``objective``
    (``next-token``, ``continuation``, ``loss``) goes to the methods that explain a target; one that
    cannot explain it (occlusion and the loss) is skipped, with the reason."""
    from attnscope.models.provenance import derive, utc_now

    started_at = utc_now()
    names = list(methods) if methods else catalogue.attribution_names()
    specs = [catalogue.get(name) for name in names]
    not_scoring = [spec.name for spec in specs if not spec.scores_tokens]
    if not_scoring:
        raise InputError(
            f"{', '.join(not_scoring)} do not score tokens; compare among {', '.join(catalogue.attribution_names())}"
        )
    options = catalogue.shared_options(names, options)  # every option checked before anything runs
    report = adapt(progress)
    if trace is None:
        from attnscope.capture.engine import capture

        trace = capture(model, text, predict="last", backend=cast("Backend", backend))
    results: dict[str, Attribution] = {}
    skipped: dict[str, str] = {}
    timings: dict[str, float] = {}
    for index, spec in enumerate(specs):
        step = scaled(report, index * 100, 100, 100 * len(specs), spec.title)
        if spec.name == "flow" and len(trace.tokens) > FLOW_COMPARISON_LIMIT:
            skipped[spec.name] = (
                f"attention flow is skipped above {FLOW_COMPARISON_LIMIT} tokens when comparing methods"
            )
            continue
        if spec.explains_target and objective is not None and objective not in spec.objectives:
            skipped[spec.name] = f"{spec.title} cannot explain the {objective} objective"
            continue
        mine = {key: value for key, value in options.items() if any(o.name == key for o in spec.options)}
        begin = time.perf_counter()
        try:
            results[spec.name] = attribute(
                model,
                text,
                spec.name,
                granularity=granularity,
                query=query,
                trace=trace if "trace" in spec.needs else None,
                target=target if spec.explains_target else None,
                objective=objective if spec.explains_target else None,
                progress=step,
                **mine,
            )
        except UnsupportedError as error:
            skipped[spec.name] = str(error)
            continue
        timings[spec.name] = time.perf_counter() - begin
    if not results:
        raise InputError(f"no method could run on this model: {skipped}")
    first = next(iter(results.values()))
    explained = first.target.get("query")
    last_token = trace.tokens[len(trace.tokens) - 1 if explained is None else int(explained)]
    end = last_token.end if last_token.end is not None else len(text)
    include = np.array([u.start is not None and u.start < end for u in first.units])
    agreement = rank_agreement({name: result.scores for name, result in results.items()}, include)
    comparison = MethodComparison(trace, granularity, results, skipped, timings, agreement)
    comparison.provenance = derive(
        trace.provenance,
        started_at=started_at,
        method="agreement",
        method_options=plain({"methods": list(results), "granularity": granularity, "query": query, **options}),
        target=plain(comparison.target),
    )
    return comparison
