"""Per-step attribution of a generation by running the model: gradients and occlusion for every
generated token at once (the catalogue's entry point is :func:`attnscope.methods.steps.step_attribution`).

The answer is scored teacher-forced: one forward pass over prompt + answer (the answer's last token
is never an input), and ``f_s``, the log-probability of step ``s``'s token at its query
``q_s = p_s − 1``, read for every step from that one pass. Row ``s`` of the result covers positions
``0 … q_s`` (later positions cannot influence a causal model's prediction there: exactly 0).

- ``attention``: the steps' attention rows (the method's layers averaged, heads combined); no model run.
- ``rollout``: the rows of attention rollout at the steps' queries (:func:`.rollout_rows`).
- ``grad-norm`` / ``grad-x-input``: ``∂f_s/∂e`` for every step from the one forward pass and batched
  vector–Jacobian products (``torch.autograd.grad(..., is_grads_batched=True)``, ``VJP_CHUNK`` steps
  per backward pass), instead of one forward and backward per step.
- ``integrated-gradients``: the same at each midpoint ``α`` of the path from the baseline (as in
  :mod:`.gradients`); one forward and batched backward passes per ``α`` serve every step. ``steps``
  (``auto`` means ``STEP_IG_STEPS`` here) is fixed; each step's completeness gap is reported.
- ``occlusion``: each earlier token removed (``remove``) or replaced by the mask token (``mask``) in
  turn, sequences batched, every step's ``f_s`` read from the same forward pass; the score is
  ``f_s − f_s(without the token)``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from attnscope.attribution.gradients import path_start
from attnscope.attribution.occlusion import mask_id
from attnscope.capture import scoring
from attnscope.progress import Progress, report, scaled

if TYPE_CHECKING:
    from attnscope.models.loaded import LoadedModel

VJP_CHUNK = 8  # steps per batched backward pass
STEP_IG_STEPS = 32  # integrated gradients' midpoints when steps is auto
OCCLUSION_BATCH = 8  # occluded sequences per forward pass


def step_gradients(
    model: LoadedModel,
    ids: list[int],
    anchors: list[bool],
    queries: list[int],
    targets: list[int],
    method: str,
    values: dict[str, Any],
    done: Progress | None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """(steps, tokens) scores of a gradient method for the steps whose queries and tokens are given
    (``values``: the method's options; ``anchors``: the positions integrated gradients keep), and details."""
    with model.lock, torch.enable_grad():
        return _gradients(model, ids, anchors, queries, targets, method, values, done)


def step_occlusion(
    model: LoadedModel, ids: list[int], queries: list[int], targets: list[int], mode: str, done: Progress | None
) -> tuple[np.ndarray, dict[str, Any]]:
    """(steps, tokens) occlusion scores (``mode``: remove or mask) and details."""
    with model.lock:
        return _occlusion(model, ids, queries, targets, mode, done)


def _objective(model: LoadedModel, embeds: torch.Tensor, queries: list[int], targets: list[int]) -> torch.Tensor:
    """(batch, steps) f_s for a (batch, tokens, hidden) batch of input embeddings."""
    hidden, _ = scoring.hidden_states(model, inputs_embeds=embeds.to(model.model.dtype))
    rows = hidden[:, torch.tensor(queries, device=hidden.device)]  # (batch, steps, hidden)
    return scoring.picked(scoring.log_probs(model, rows), targets)


def _batched_gradients(
    f: torch.Tensor, embeds: torch.Tensor, done: Progress | None, stage: str
) -> Iterator[tuple[int, torch.Tensor]]:
    """(chunk, tokens, hidden) ∂f_s/∂embeds for consecutive chunks of the steps of ``f`` (steps,)."""
    n = f.shape[0]
    for begin in range(0, n, VJP_CHUNK):
        report(done, begin, n, stage)
        count = min(VJP_CHUNK, n - begin)
        picks = torch.zeros(count, n, device=f.device, dtype=f.dtype)  # one step's f per row
        picks[torch.arange(count), torch.arange(begin, begin + count)] = 1
        (gradient,) = torch.autograd.grad(f, embeds, grad_outputs=picks, is_grads_batched=True, retain_graph=True)
        yield begin, gradient[:, 0].double()  # (chunk, tokens, hidden)
    report(done, n, n, stage)


def _gradients(
    model: LoadedModel,
    ids: list[int],
    anchors: list[bool],
    queries: list[int],
    targets: list[int],
    method: str,
    values: dict[str, Any],
    done: Progress | None,
) -> tuple[np.ndarray, dict[str, Any]]:
    hf = model.model
    device = scoring.device_of(model)
    embeds = hf.get_input_embeddings()(torch.tensor([ids], device=device)).detach().float()  # (1, tokens, hidden)
    scores = np.zeros((len(queries), len(ids)), dtype=np.float64)
    if method != "integrated-gradients":
        embeds.requires_grad_(True)
        f = _objective(model, embeds, queries, targets)[0]  # (steps,)
        for begin, gradient in _batched_gradients(f, embeds, done, method):
            chunk = gradient.norm(dim=-1) if method == "grad-norm" else (gradient * embeds[0].detach().double()).sum(-1)
            scores[begin : begin + len(chunk)] = chunk.cpu().numpy()
        return scores, {"f": f.detach().double().cpu().numpy().tolist()}
    n_alpha = STEP_IG_STEPS if values["steps"] == "auto" else int(values["steps"])
    tokens = embeds[0]
    start = path_start(model, tokens, anchors, values["baseline"])
    difference = (tokens - start).double()
    for number in range(n_alpha):
        alpha = (number + 0.5) / n_alpha
        point = (start + alpha * (tokens - start))[None].requires_grad_(True)
        f = _objective(model, point, queries, targets)[0]
        stage = f"integrated gradients ({n_alpha} steps)"
        for begin, gradient in _batched_gradients(f, point, scaled(done, number, 1, n_alpha, stage), stage):
            scores[begin : begin + len(gradient)] += (gradient * difference).sum(-1).cpu().numpy() / n_alpha
        report(done, number + 1, n_alpha, f"integrated gradients ({n_alpha} steps)")
    with torch.inference_mode():
        f_input = _objective(model, tokens[None], queries, targets)[0].double().cpu().numpy()
        f_baseline = _objective(model, start[None], queries, targets)[0].double().cpu().numpy()
    delta = scores.sum(axis=1) - (f_input - f_baseline)
    return scores, {
        "steps": n_alpha,
        "baseline": f"{values['baseline']} embedding (special tokens and the first position kept)",
        "f_input": f_input.tolist(),
        "f_baseline": f_baseline.tolist(),
        "delta": delta.tolist(),
    }


def _occlusion(
    model: LoadedModel, ids: list[int], queries: list[int], targets: list[int], mode: str, done: Progress | None
) -> tuple[np.ndarray, dict[str, Any]]:
    device = scoring.device_of(model)
    scores = np.zeros((len(queries), len(ids)), dtype=np.float64)
    last = max(queries)
    replacement = mask_id(model) if mode == "mask" else -1

    def f_of(batch: list[list[int]], shifted: bool) -> np.ndarray:  # (batch, steps)
        with torch.inference_mode():
            hidden, _ = scoring.hidden_states(model, input_ids=torch.tensor(batch, device=device))
            rows = torch.tensor([max(q - 1, 0) if shifted else q for q in queries], device=device)
            return scoring.picked(scoring.log_probs(model, hidden[:, rows]), targets).double().cpu().numpy()

    base = f_of([ids], shifted=False)[0]
    occluded = list(range(last + 1))  # a token after the last query changes nothing
    for begin in range(0, len(occluded), OCCLUSION_BATCH):
        report(done, begin, len(occluded), f"occlusion ({mode})")
        chunk = occluded[begin : begin + OCCLUSION_BATCH]
        if mode == "mask":
            batch = [[replacement if i == j else token for i, token in enumerate(ids)] for j in chunk]
        else:
            batch = [ids[:j] + ids[j + 1 :] for j in chunk]
        without = f_of(batch, shifted=mode == "remove")
        for row, j in enumerate(chunk):
            affected = [s for s, q in enumerate(queries) if j <= q and (mode == "mask" or q > 0)]
            scores[affected, j] = base[affected] - without[row, affected]
    report(done, len(occluded), len(occluded), f"occlusion ({mode})")
    return scores, {"mode": mode, "f": base.tolist(), **({"mask_token_id": replacement} if mode == "mask" else {})}
