"""Differential privacy for released answers: noise from OpenDP on attention rows and attribution scores.

:func:`privatize_answer` takes an ``analysis`` or ``attribution`` answer (the JSON contract of
``attnscope analyze --json`` / ``attribute --json``) and returns a new one whose numbers derived from
the input are released through an OpenDP measurement — or withheld — before anything prints, returns
or stores it. The answer then carries a top-level ``"dp"`` block (what every view and export labels)
and the same facts as ``dp_*`` fields of its ``provenance`` record.

What is protected: the released numbers, one vector per release, with the neighbouring relation
"any two vectors of the stated kind" — two probability rows differ by at most 2 in L1 (√2 in L2);
two score vectors of L1 norm 1 differ by at most 2 in L1 and in L2 (a signed vector can turn into
its negation). A release is therefore ε-DP (Laplace) or (ε, δ)-DP (Gaussian) about the whole row,
whatever input produced it. What is not: the text, its tokens and units, the attribution's target and
which units have no score are released as they are (the page shows the text the user gave;
personal data in it is the masking layer's business). Repeated releases compose: every answer is one
more release, and its ``dp`` block says how many rows it released and their total ε.

OpenDP's constructors are behind its ``"contrib"`` feature flag (code not yet vetted by OpenDP's own
review); :func:`_measurement` enables it on first use rather than at import, so importing attnscope
changes no library's global state. Floating-point vectors need no ``"floating-point"`` flag: OpenDP
samples them through its discrete Laplace and Gaussian samplers (exact arithmetic, no float-sampling
attack). OpenDP draws from the operating system's secure generator and cannot be seeded.
"""

from __future__ import annotations

import copy
import functools
import math
from typing import Any

import numpy as np

from attnscope.analysis.stats import display_rows, row_stats
from attnscope.errors import InputError
from attnscope.governance.provenance import value_sha256

__all__ = ["MAX_EPSILON", "MECHANISMS", "check_parameters", "library", "privatize_answer"]

MECHANISMS = ("laplace", "gaussian")
MAX_EPSILON = 100.0  # above this the noise is negligible against values in [0, 1]: no privacy to speak of
MIN_EPSILON = 1e-3  # below this the noise (scale ≥ 2000) swamps values in [0, 1] entirely: nothing is released
MAX_DELTA = 1e-2  # δ is the chance the guarantee fails outright: above 1% it is no guarantee
COMPOSITION = "sequential (basic): total ε = sum of the rows' ε, total δ = sum of their δ"

# L1 and L2 sensitivity of one released vector, by answer kind (see the module docstring)
SENSITIVITY = {
    "analysis": {"laplace": 2.0, "gaussian": math.sqrt(2.0)},
    "attribution": {"laplace": 2.0, "gaussian": 2.0},
}
NORM = {"laplace": "L1", "gaussian": "L2"}
CONSTRUCTOR = {
    "laplace": "opendp.measurements.make_laplace",
    "gaussian": "opendp.measurements.make_gaussian → opendp.combinators.make_zCDP_to_approxDP → make_fix_delta",
}
# attribution details that are the method's settings, not numbers computed from the model's outputs
SETTING_DETAILS = ("baseline", "mode", "scorer", "mask_token_id", "tolerance")


def check_parameters(epsilon: float, mechanism: str = "laplace", delta: float | None = None) -> None:
    """Refuse a privacy budget that means nothing, with a one-line :class:`InputError`."""
    if isinstance(epsilon, bool) or not isinstance(epsilon, int | float) or not math.isfinite(epsilon):
        raise InputError(f"DP ε must be a finite number, not {epsilon!r}")
    if epsilon <= 0:
        raise InputError(f"DP ε must be above 0 (got {epsilon:g})")
    if epsilon < MIN_EPSILON:
        raise InputError(f"DP ε below {MIN_EPSILON:g} releases nothing but noise (got {epsilon:g})")
    if epsilon > MAX_EPSILON:
        raise InputError(f"DP ε above {MAX_EPSILON:g} gives no meaningful privacy (got {epsilon:g})")
    if mechanism not in MECHANISMS:
        raise InputError(f"unknown DP mechanism {mechanism!r}; use {' or '.join(MECHANISMS)}")
    if mechanism == "laplace" and delta is not None:
        raise InputError("DP δ is for the Gaussian mechanism; the Laplace mechanism is pure ε-DP")
    if mechanism == "gaussian":
        if delta is None:
            raise InputError("the Gaussian mechanism needs DP δ (e.g. 1e-6)")
        if isinstance(delta, bool) or not isinstance(delta, int | float) or not (0 < delta < 1):
            raise InputError(f"DP δ must be between 0 and 1, exclusive (got {delta!r})")
        if delta > MAX_DELTA:
            raise InputError(f"DP δ above {MAX_DELTA:g} is no guarantee (the chance it fails outright; got {delta:g})")


def library() -> str:
    """``"opendp <version>"``, as the records say it."""
    from importlib.metadata import version

    return f"opendp {version('opendp')}"


@functools.lru_cache(maxsize=32)
def _measurement(mechanism: str, sensitivity: float, epsilon: float, delta: float | None) -> tuple[Any, float]:
    """The OpenDP measurement on float vectors and its noise scale, calibrated so that its privacy map
    at ``sensitivity`` is at most ``epsilon`` (and ``delta``) — checked here with ``measurement.map``."""
    import opendp.prelude as dp

    dp.enable_features("contrib")  # see the module docstring
    domain = dp.vector_domain(dp.atom_domain(T=float, nan=False))
    if mechanism == "laplace":
        metric = dp.l1_distance(T=float)
        scale = sensitivity / epsilon
        measurement = dp.m.make_laplace(domain, metric, scale=scale)
        # the map rounds up: nudge the scale up by ulps until the map is within ε (at most a few steps)
        while measurement.map(sensitivity) > epsilon:
            scale = math.nextafter(scale, math.inf)
            measurement = dp.m.make_laplace(domain, metric, scale=scale)
        return measurement, scale

    if delta is None:
        raise InputError("the Gaussian mechanism needs DP δ (e.g. 1e-6)")
    fixed_delta = delta

    def gaussian(scale: float) -> Any:
        zcdp = dp.m.make_gaussian(domain, dp.l2_distance(T=float), scale=scale)
        return dp.c.make_fix_delta(dp.c.make_zCDP_to_approxDP(zcdp), fixed_delta)

    # the smallest σ whose (ε, δ) privacy map at the sensitivity is within the budget
    scale = dp.binary_search_param(gaussian, d_in=sensitivity, d_out=(epsilon, fixed_delta))
    measurement = gaussian(scale)
    spent_epsilon, spent_delta = measurement.map(sensitivity)
    if spent_epsilon > epsilon or spent_delta > fixed_delta:  # binary_search_param promises this; checked anyway
        raise RuntimeError(f"OpenDP's Gaussian calibration spends ({spent_epsilon}, {spent_delta})")
    return measurement, scale


def _release(values: np.ndarray, mechanism: str, sensitivity: float, epsilon: float, delta: float | None) -> np.ndarray:
    """``values`` (n,) plus OpenDP noise: one release of one vector."""
    if values.size == 0:
        return values
    measurement, _ = _measurement(mechanism, sensitivity, epsilon, delta)
    return np.asarray(measurement([float(v) for v in values]), dtype=np.float64)


def _stats(row: np.ndarray) -> dict[str, Any]:
    """:func:`attnscope.analysis.stats.row_stats` of a released row (post-processing), -0.0 as 0."""
    stats = row_stats(row).to_dict()
    return {**stats, "entropy_nats": stats["entropy_nats"] + 0.0}


def _analysis(answer: dict[str, Any], noise: Any) -> dict[str, Any]:
    """Release ``attention.weights``; recompute ``stats`` from it; withhold ``prediction``."""
    raw = np.asarray(answer["attention"]["weights"], dtype=np.float64)
    norm = float(np.abs(raw).sum())
    notes = []
    if raw.size and (raw.min() < 0 or abs(norm - 1.0) > 1e-4):  # e.g. the max over heads: not a probability row
        notes.append("the row was divided by its L1 norm before noise (it was not a probability row)")
    row = raw / norm if norm > 0 else raw  # a probability row: unchanged up to rounding
    released = noise(row)
    answer["attention"] = {**answer["attention"], "weights": [float(w) for w in released]}
    withheld = []
    if answer.get("prediction") is not None:
        answer["prediction"] = None
        withheld.append("prediction")
    derived = []
    stack = answer["attention"].get("stack")
    keys = answer.get("tokens") if stack in ("encoder", "cross") else answer.get("target_tokens", answer.get("tokens"))
    if "stats" in answer and released.size and keys is not None and len(keys) == released.size:
        special = [bool(token.get("special")) for token in keys]
        answer["stats"] = {basis: _stats(shown) for basis, shown in display_rows(released, special).items()}
        derived.append("stats: recomputed from the released row")
    elif "stats" in answer:
        del answer["stats"]
        withheld.append("stats")
    return {
        "released": ["attention.weights"],
        "derived": derived,
        "withheld": withheld,
        "normalisation": notes[0] if notes else "none: a probability row has L1 norm 1",
        "not_covered": ["text", "tokens", "target_tokens", "parts", "the view (layer, head, query)"],
    }


def _attribution(answer: dict[str, Any], noise: Any) -> dict[str, Any]:
    """Release ``scores`` normalised to L1 norm 1; ``token_scores`` follow from them; withhold the
    details computed from the model's outputs."""
    scores = answer["scores"]
    finite = [i for i, s in enumerate(scores) if s is not None and math.isfinite(s)]
    values = np.asarray([scores[i] for i in finite], dtype=np.float64)
    norm = float(np.abs(values).sum())
    released = noise(values / norm if norm > 0 else values)
    new_scores: list[float | None] = [None] * len(scores)
    for index, value in zip(finite, released, strict=True):
        new_scores[index] = float(value)
    answer["scores"] = new_scores
    token_scores: list[float | None] = [None] * len(answer.get("token_scores") or [])
    for unit, score in zip(answer["units"], new_scores, strict=True):
        for index in unit.get("tokens", []):
            if 0 <= index < len(token_scores):
                token_scores[index] = score
    answer["token_scores"] = token_scores
    details = answer.get("details") or {}
    withheld = [f"details.{key}" for key in details if key not in SETTING_DETAILS]
    answer["details"] = {key: value for key, value in details.items() if key in SETTING_DETAILS}
    return {
        "released": ["scores"] if finite else [],
        "derived": ["token_scores: each token's unit score, taken from the released scores"],
        "withheld": withheld,
        "normalisation": "the finite scores divided by their L1 norm before noise (the scale of the scores is not "
        "released)",
        "not_covered": ["text", "units", "target (given, or the model's own prediction)", "which scores are null"],
        "rows": 1 if finite else 0,
    }


def privatize_answer(
    kind: str,
    answer: dict[str, Any],
    epsilon: float,
    *,
    mechanism: str = "laplace",
    delta: float | None = None,
    seed: int | None = None,
) -> dict[str, Any]:
    """A copy of ``answer`` whose numbers derived from the input are released with differential privacy.

    ``analysis``: ``attention.weights`` gets Laplace noise of scale 2/ε (L1 sensitivity 2) or Gaussian
    noise calibrated by OpenDP for (ε, δ) at L2 sensitivity √2; ``stats`` is recomputed from the noised
    row (post-processing). ``prediction`` is withheld (``null``): its candidates are the top-k of the
    model's exact distribution, so noising only their probabilities would still reveal which tokens
    lead — a private top-k needs the whole vocabulary's distribution, which the answer does not carry.

    ``attribution``: the finite ``scores`` are divided by their L1 norm, then released with L1
    sensitivity 2 (Laplace, scale 2/ε) or L2 sensitivity 2 (Gaussian); ``token_scores`` are each
    token's unit score taken from the released scores (post-processing, no second release); the
    ``details`` computed from the model's outputs (f, completeness delta, log-probabilities, steps
    taken, warnings quoting them, bounded units) are withheld and the method's settings kept.

    The released values are the mechanism's output as it is: nothing is clipped or renormalised, so
    weights may be negative and need not sum to 1 (the views clip colours to [0, 1], display only).
    The provenance record gets the ``dp_*`` fields, its output hashes are those of the released
    values and its completeness delta is withheld; a top-level ``dp`` block says the same for views.

    Args:
        kind: ``analysis`` or ``attribution`` (the answer's ``result``).
        answer: the JSON answer; not modified.
        epsilon: ε of each release, in (0, 100].
        mechanism: ``laplace`` (pure ε-DP) or ``gaussian`` ((ε, δ)-DP).
        delta: δ in (0, 1), for ``gaussian`` only.
        seed: must be None: OpenDP draws from the operating system's secure generator and cannot be
            seeded (a seeded release could be undone by whoever knows the seed).

    Raises:
        InputError: a meaningless ε or δ, an unknown mechanism or kind, or a seed.
    """
    check_parameters(epsilon, mechanism, delta)
    if seed is not None:
        raise InputError("DP noise cannot be seeded: OpenDP draws it from the operating system's secure generator")
    if kind not in SENSITIVITY or answer.get("result") != kind:
        raise InputError(f"differential privacy applies to analysis and attribution answers, not {kind!r}")
    if "dp" in answer:
        raise InputError("this answer is already noised; noise the exact answer once")
    epsilon = float(epsilon)
    delta = None if delta is None else float(delta)
    sensitivity = SENSITIVITY[kind][mechanism]
    _, scale = _measurement(mechanism, sensitivity, epsilon, delta)

    def noise(values: np.ndarray) -> np.ndarray:
        return _release(values, mechanism, sensitivity, epsilon, delta)

    private = copy.deepcopy(answer)
    facts = _analysis(private, noise) if kind == "analysis" else _attribution(private, noise)
    rows = facts.pop("rows", 1)
    block: dict[str, Any] = {
        "mechanism": mechanism,
        "opendp_constructor": CONSTRUCTOR[mechanism],
        "epsilon": epsilon,
        "delta": delta,
        "sensitivity": sensitivity,
        "sensitivity_norm": NORM[mechanism],
        "noise_scale": scale,
        "rows_released": rows,
        "composition": COMPOSITION,
        "total_epsilon": rows * epsilon,
        "total_delta": None if delta is None else rows * delta,
        "library": library(),
        **facts,
        "post_processing": "; ".join(
            ["none on the released values: the mechanism's output, unclipped (may be negative, need not sum to 1)"]
            + facts["derived"]
        ),
    }
    private["dp"] = block
    record = private.get("provenance")
    if isinstance(record, dict):
        private["provenance"] = released_record(record, private, block, kind)
    return private


def released_record(record: dict[str, Any], answer: dict[str, Any], block: dict[str, Any], kind: str) -> dict[str, Any]:
    """The provenance record with the ``dp_*`` fields, the released values' output hashes, and no
    completeness delta (computed from the exact scores)."""
    record = {
        **record,
        "dp_mechanism": block["mechanism"],
        "dp_epsilon": block["epsilon"],
        "dp_delta": block["delta"],
        "dp_sensitivity": block["sensitivity"],
        "dp_sensitivity_norm": block["sensitivity_norm"],
        "dp_noise_scale": block["noise_scale"],
        "dp_rows_released": block["rows_released"],
        "dp_composition": block["composition"],
        "dp_total_epsilon": block["total_epsilon"],
        "dp_library": block["library"],
    }
    if kind == "attribution" and "completeness_delta" in record:
        record["completeness_delta"] = None
    target = record.get("target")
    if isinstance(target, dict):  # the target's probability and the like come from the exact model output
        record["target"] = {key: (value if key in ("text", "ids", "objective", "query") else None)
                            for key, value in target.items()}  # fmt: skip
    hashes = record.get("output_hashes")
    if isinstance(hashes, dict):  # hashes of exact values would confirm a guess of them: rehash what was released
        changed = {"attention.weights", "prediction.top", "scores", "token_scores"}
        record["output_hashes"] = {
            path: (_hash_at(answer, path) if path in changed else value) for path, value in hashes.items()
        }
    return record


def _hash_at(answer: dict[str, Any], path: str) -> str | None:
    value: Any = answer
    for key in path.split("."):
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value_sha256(value)
