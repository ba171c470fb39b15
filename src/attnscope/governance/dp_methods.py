"""Differential privacy for answers that carry several methods: ``agreement`` and ``report``.

Each method's scores are one release by :func:`attnscope.governance.dp.privatize_answer` (the
attribution rule: scores divided by their L1 norm, L1 sensitivity 2), so an answer with *m* methods
spends *m* × ε (sequential composition, said in its ``dp`` block and provenance record). What follows
from the released scores is recomputed from them — post-processing, no further privacy cost:

- ``agreement``: Spearman ρ and Kendall τ-b between the released score vectors, over the same units
  as the exact comparison (those that start no later than the explained token);
- a report's observations (the caller words them again from the private data; the render layer
  sits above this one).

Withheld (``null`` or empty, and named in ``dp.withheld``): the next-token prediction and the
target's probability (the model's exact output), a report's head metrics and head types (a layers ×
heads grid per metric, computed from every attention row — no released vector stands for them), and
each method's details computed from the model's outputs (as for one attribution).
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from attnscope.analysis.faithfulness import rank_agreement
from attnscope.errors import InputError
from attnscope.governance.dp import check_parameters, privatize_answer, released_record
from attnscope.governance.provenance import output_hashes

KINDS = ("agreement", "report")
# the facts every method's release shares (same mechanism, ε, δ and sensitivity)
SHARED = ("mechanism", "opendp_constructor", "epsilon", "delta", "sensitivity", "sensitivity_norm", "noise_scale",
          "composition", "library")  # fmt: skip
HEADS_WITHHELD = (
    "withheld under differential privacy: head metrics summarise every attention row of the model and "
    "no released vector stands for them"
)


def privatize_methods(
    kind: str, answer: dict[str, Any], epsilon: float, *, mechanism: str = "laplace", delta: float | None = None
) -> dict[str, Any]:
    """A copy of an ``agreement`` or ``report`` answer with every method's scores released with
    differential privacy (ε each; see the module docstring). ``answer`` is not modified.

    Raises:
        InputError: a meaningless ε or δ, another kind of answer, an answer already noised.
    """
    check_parameters(epsilon, mechanism, delta)
    if kind not in KINDS or answer.get("result") != kind:
        raise InputError(f"this differential privacy step applies to agreement and report answers, not {kind!r}")
    if "dp" in answer:
        raise InputError("this answer is already noised; noise the exact answer once")
    private = copy.deepcopy(answer)
    methods: dict[str, Any] = {}
    blocks = []
    for name, method in answer["methods"].items():
        methods[name] = privatize_answer("attribution", method, epsilon, mechanism=mechanism, delta=delta)
        blocks.append(methods[name]["dp"])
    private["methods"] = methods
    withheld = [f"methods.{name}.{item}" for name, method in methods.items() for item in method["dp"]["withheld"]]
    if private.get("prediction") is not None:
        private["prediction"] = None
        withheld.append("prediction")
    target = private.get("target")
    if isinstance(target, dict) and target.get("prob") is not None:
        private["target"] = {**target, "prob": None}
        withheld.append("target.prob")
    private["agreement"] = _agreement(private)
    if kind == "report":
        heads = private.get("heads") or {}
        private["heads"] = {**heads, "metrics": {}, "labels": [], "note": HEADS_WITHHELD}
        withheld += ["heads.metrics", "heads.labels"]
    rows = sum(block["rows_released"] for block in blocks)
    first = blocks[0] if blocks else {}
    block = {
        **{key: first.get(key) for key in SHARED},
        "rows_released": rows,
        "total_epsilon": rows * float(epsilon),
        "total_delta": None if delta is None else rows * float(delta),
        "released": [f"methods.{name}.scores" for name, method in methods.items() if method["dp"]["released"]],
        "derived": [
            "methods.*.token_scores: each token's unit score, taken from the released scores",
            "agreement: Spearman ρ and Kendall τ-b between the released scores",
        ],
        "withheld": withheld,
        "normalisation": "each method's finite scores divided by their L1 norm before noise",
        "not_covered": ["text", "units", "target (given, or the model's own prediction)", "which scores are null"],
        "post_processing": "none on the released values; agreement recomputed from them",
    }
    private["dp"] = block
    record = private.get("provenance")
    if isinstance(record, dict):
        private["provenance"] = _record(record, private, block)
    return private


def _agreement(answer: dict[str, Any]) -> dict[str, Any]:
    """Rank agreement between the released scores, over the units the exact comparison used."""
    names = list(answer["methods"])
    query = (answer.get("target") or {}).get("query")
    units = answer.get("units") or []
    # as the exact comparison: units that are in the text (not an inserted special token) and start by the
    # explained token
    include = np.array([
        unit.get("start") is not None and (not unit.get("tokens") or query is None or min(unit["tokens"]) <= int(query))
        for unit in units
    ])  # fmt: skip
    scores = {
        name: np.array([np.nan if s is None else s for s in answer["methods"][name]["scores"]], dtype=np.float64)
        for name in names
    }
    return rank_agreement(scores, include if include.size else None).to_json()


def _record(record: dict[str, Any], answer: dict[str, Any], block: dict[str, Any]) -> dict[str, Any]:
    """The answer's record with the ``dp_*`` fields (as for one attribution: no completeness delta, the
    target's model outputs withheld) and the output hashes of what is released now."""
    record = released_record(record, answer, block, "attribution")
    if isinstance(record.get("output_hashes"), dict):
        record["output_hashes"] = output_hashes(answer)
    return record
