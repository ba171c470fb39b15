"""Two models on one text: capture both, compare them on common units, attribute with both.

``compare_two_models`` is what ``attnscope compare TEXT --model A --model B`` (or ``--adapter``) and
``POST /api/compare/models`` run: one capture per model, :func:`attnscope.analysis.model_compare.compare_models`
on the two traces, then one token attribution method of the catalogue (default ``grad-x-input``, a
cheap gradient method: one backward pass per model) run on each model, its token scores summed
onto the common units and ranked against each other. Each model explains its own top prediction
(``target`` of each side says which token that is), unless a ``target`` text is given.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from attnscope.analysis.model_compare import ModelComparison, attribution_side_by_side, compare_models
from attnscope.analysis.units import Granularity
from attnscope.errors import InputError
from attnscope.methods import catalogue
from attnscope.methods.run import attribute
from attnscope.progress import adapt, scaled

if TYPE_CHECKING:
    from attnscope.capture.trace import Trace
    from attnscope.models.loaded import LoadedModel

DEFAULT_METHOD = "grad-x-input"
NO_ATTRIBUTION = "none"


def check_method(method: str, *models: LoadedModel) -> str:
    """``method`` if it can score single tokens (else an :class:`InputError` naming those that can)
    and, given ``models``, run on each model's kind (a gradient method on a masked model is refused
    here, before either model captures, naming the methods both can run)."""
    if method == NO_ATTRIBUTION:
        return method
    spec = catalogue.get(method)
    if not spec.scores_tokens or "token" not in spec.units:
        usable = [m.name for m in catalogue.methods(scores_tokens=True) if "token" in m.units]
        raise InputError(f"{method} cannot score tokens of both models; use one of {', '.join(usable)} or none")
    for side, model in zip("AB", models, strict=False):
        if model.kind not in spec.kinds:
            kinds = {m.kind for m in models}
            usable = [
                m.name for m in catalogue.methods(scores_tokens=True) if "token" in m.units and kinds <= set(m.kinds)
            ]
            raise InputError(
                f"{method} runs on {' and '.join(spec.kinds)} models, and model {side} ({model.spec}) is a "
                f"{model.kind} model; use method {', '.join(usable)} or none"
            )
    return method


def check_pair(model_a: LoadedModel, model_b: LoadedModel, method: str) -> None:
    """Refuse, before either model captures, models that are not causal or masked and a ``method``
    that one of them cannot run."""
    for model in (model_a, model_b):
        if model.kind not in ("causal", "masked"):
            raise InputError(f"{model.spec} is a {model.kind} model; only causal and masked models are compared")
    check_method(method, model_a, model_b)


def compare_two_models(
    model_a: LoadedModel,
    model_b: LoadedModel,
    text: str,
    *,
    granularity: Granularity = "word",
    method: str = DEFAULT_METHOD,
    layers: list[int] | None = None,
    top_k: int = 5,
    target: str | None = None,
    traces: tuple[Trace, Trace] | None = None,
    progress: Callable[..., None] | None = None,
    layer_option: str = "layers",
) -> ModelComparison:
    """Model A against model B on ``text`` (A − B); ``traces`` reuses captures of ``text`` by each;
    ``layer_option`` names how the caller chooses layers in a refusal of too large maps."""
    from attnscope.capture import capture

    check_pair(model_a, model_b, method)
    steps = adapt(progress)
    if traces is None:
        made = []
        for side, model in enumerate((model_a, model_b)):
            made.append(
                capture(
                    model,
                    text,
                    top_k=max(top_k, 1),
                    predict="last",
                    progress=scaled(steps, side * 25, 25, 100, "capture"),
                )
            )
        traces = (made[0], made[1])
    comparison = compare_models(
        traces[0], traces[1], granularity=granularity, layers=layers, top_k=top_k, layer_option=layer_option
    )
    if method != NO_ATTRIBUTION:
        scores: list[np.ndarray] = []
        explained: list[dict[str, Any]] = []
        for side, (model, trace) in enumerate(zip((model_a, model_b), traces, strict=True)):
            result = attribute(
                model,
                text,
                method,
                granularity="token",
                target=target,
                trace=trace,
                progress=scaled(steps, 50 + side * 25, 25, 100, method),
            )
            scores.append(np.asarray(result.scores, dtype=np.float64))  # (tokens,): token units
            explained.append(result.target)
        comparison.attribution = {
            **attribution_side_by_side(comparison.units, scores[0], scores[1], method),
            "targets": explained,
        }
    return comparison
