"""Per-step attribution of a generation: for every generated token, a score for each earlier token,
by any method of the catalogue that can explain a step (``explains_steps``).

``attention`` and ``rollout`` read the generation's trace; the gradient methods and occlusion run the
model teacher-forced over prompt + answer (:mod:`attnscope.attribution.steps`). Row ``s`` of the
result scores positions ``0 … p_s − 1`` (the tokens before step ``s``'s token); the rest is 0.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from attnscope.analysis.aggregate import aggregate_attention
from attnscope.analysis.rollout import rollout_rows
from attnscope.capture.trace import GenerationTrace
from attnscope.errors import InputError
from attnscope.methods import catalogue
from attnscope.progress import adapt

if TYPE_CHECKING:
    from attnscope.models.loaded import LoadedModel

# the computations here; a catalogue entry says whether its method can score steps (explains_steps)
IMPLEMENTED = ("attention", "rollout", "grad-norm", "grad-x-input", "integrated-gradients", "occlusion")


@dataclass
class StepAttribution:
    method: str
    options: dict[str, Any]
    scores: np.ndarray  # (steps, tokens) float64: row s scores positions 0 … p_s − 1, 0 beyond
    positions: list[int]  # p_s: where each step's token is
    details: dict[str, Any] = field(default_factory=dict)


def step_attribution(
    model: LoadedModel | None,
    trace: GenerationTrace,
    method: str,
    *,
    progress: Callable[..., None] | None = None,
    **options: Any,
) -> StepAttribution:
    """Scores of ``method`` for every step of ``trace`` (see the module docstring); ``options`` are
    the method's catalogue options (``attnscope methods``)."""
    names = catalogue.step_names()
    if method not in names or method not in IMPLEMENTED:
        raise InputError(f"{method!r} cannot attribute generation steps; these can: {', '.join(names)}")
    if not isinstance(trace, GenerationTrace) or not trace.steps:
        raise InputError("per-step attribution needs a generation (attnscope.generate) with at least one step")
    if trace.seq2seq:
        raise InputError("per-step attribution of an encoder-decoder's generation is not supported yet")
    values = catalogue.get(method).parse_options(options)
    positions = [step.position for step in trace.steps]
    queries = [p - 1 for p in positions]
    done = adapt(progress)
    details: dict[str, Any] = {}
    if method == "attention":
        scores = aggregate_attention(trace, layers=values["layers"], head=values["heads"], rows=queries)
    elif method == "rollout":
        scores = rollout_rows(trace, queries, residual=values["residual"])
    else:
        if model is None:
            raise InputError(f"{method} runs the model: pass the model the generation was made with")
        if model.fingerprint != trace.model.fingerprint:
            raise InputError(f"the generation was made with {trace.model.spec}, not {model.spec}")
        from attnscope.attribution.steps import step_gradients, step_occlusion

        inputs = trace.tokens[:-1]  # the answer's last token is never an input
        ids = [t.id for t in inputs]
        targets = [trace.tokens[p].id for p in positions]
        if method == "occlusion":
            scores, details = step_occlusion(model, ids, queries, targets, values["mode"], done)
        else:
            anchors = [t.special or t.index == 0 for t in inputs]  # kept by integrated gradients
            scores, details = step_gradients(model, ids, anchors, queries, targets, method, values, done)
    full = np.zeros((len(positions), len(trace.tokens)), dtype=np.float64)
    width = min(full.shape[1], scores.shape[1])
    full[:, :width] = scores[:, :width]
    for row, p in enumerate(positions):
        full[row, p:] = 0.0  # tokens at or after the step's own cannot have mattered
    return StepAttribution(method, values, full, positions, details)
