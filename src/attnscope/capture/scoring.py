"""Scoring text with a language model: final hidden states → logits → log-probabilities.

The one place that asks the model how likely text is. It serves the next-token predictions of a
capture (top-k at every position, in chunks), attribution targets, gradient objectives, the
in-process occlusion scorer and the OpenAI-compatible endpoints of ``attnscope serve``:

- :func:`lm_logits` applies the model's own head to hidden states (logit scaling and final
  soft-capping included, as the model's forward does);
- :func:`hidden_states` runs the base model (ids or embeddings, optional padding mask and cache);
- :func:`log_probs`, :func:`picked` and :func:`top_k` turn logits into what callers need;
- :func:`next_token_log_probs` and :func:`position_log_probs` score a whole sequence.

Functions do not switch autograd off: callers choose ``torch.inference_mode()`` or gradients.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import torch

from attnscope.models.loaded import LoadedModel

# Logit elements materialised at once when scoring many positions (float32: 128 MB).
LOGIT_CHUNK_ELEMENTS = 32 * 1024 * 1024


def device_of(model: LoadedModel) -> torch.device:
    return next(model.model.parameters()).device


def lm_logits(hf: Any, hidden: torch.Tensor) -> torch.Tensor:
    """(..., vocab) logits from final hidden states, as the model's LM head computes them."""
    logits = hf.get_output_embeddings()(hidden)
    config = hf.config.get_text_config()
    scaling = getattr(config, "logits_scaling", None)
    if scaling:
        logits = logits / scaling
    softcap = getattr(config, "final_logit_softcapping", None)
    if softcap:
        logits = torch.tanh(logits / softcap) * softcap
    return logits


def cache_argument(base: Any) -> str:
    """The name transformers gives the key/value cache argument (``cache`` from 5.2x, before that
    ``past_key_values``)."""
    parameters = inspect.signature(type(base).forward).parameters
    return "cache" if "cache" in parameters else "past_key_values"


def hidden_states(
    model: LoadedModel,
    *,
    input_ids: torch.Tensor | None = None,
    inputs_embeds: torch.Tensor | None = None,
    attention_mask: torch.Tensor | None = None,
    cache: Any = None,
) -> tuple[torch.Tensor, Any]:
    """(batch, tokens, hidden) final hidden states of the base model, and the key/value ``cache``
    it extended (None when none was given)."""
    base = model.model.base_model
    extra = {} if cache is None else {cache_argument(base): cache}
    out = base(
        input_ids=input_ids,
        inputs_embeds=inputs_embeds,
        attention_mask=attention_mask,
        use_cache=cache is not None,
        **extra,
    )
    return out.last_hidden_state, _cache_out(out) if cache is not None else None


def _cache_out(out: Any) -> Any:
    found = getattr(out, "cache", None)
    return found if found is not None else getattr(out, "past_key_values", None)


def cache_of(model: LoadedModel, input_ids: torch.Tensor) -> tuple[torch.Tensor, Any]:
    """Hidden states of ``input_ids`` and the key/value cache they leave (for prefix reuse)."""
    out = model.model.base_model(input_ids=input_ids, use_cache=True)
    return out.last_hidden_state, _cache_out(out)


def log_probs(model: LoadedModel, hidden: torch.Tensor) -> torch.Tensor:
    """(..., vocab) float32 log-softmax of the next-token distribution after each hidden state."""
    return torch.log_softmax(lm_logits(model.model, hidden).float(), dim=-1)


def picked(logprobs: torch.Tensor, ids: Sequence[int] | torch.Tensor) -> torch.Tensor:
    """(rows,) the log-probability of ``ids[i]`` in row ``i`` of (rows, vocab) ``logprobs``."""
    wanted = torch.as_tensor(ids, device=logprobs.device)
    return logprobs[..., torch.arange(len(wanted), device=logprobs.device), wanted]


def top_k(logits: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(top ids, top probabilities, log-sum-exp) of (rows, vocab) logits; probabilities in float32."""
    logits = logits.to(torch.float32)
    log_norm = torch.logsumexp(logits, dim=-1)  # (rows,)
    values, ids = torch.topk(logits, k=min(k, logits.shape[-1]), dim=-1)
    return ids, torch.exp(values - log_norm[:, None]), log_norm


def rows_per_chunk(vocab: int) -> int:
    """How many positions' logits fit in :data:`LOGIT_CHUNK_ELEMENTS`."""
    return max(1, LOGIT_CHUNK_ELEMENTS // max(vocab, 1))


def next_token_log_probs(model: LoadedModel, ids: Sequence[int]) -> torch.Tensor:
    """(vocab,) float32 log-probabilities of the token after ``ids`` (on the CPU)."""
    with model.lock, torch.inference_mode():
        hidden, _ = hidden_states(model, input_ids=torch.tensor([list(ids)], device=device_of(model)))
        return log_probs(model, hidden[0, -1:])[0].cpu()


def position_log_probs(
    model: LoadedModel, ids: Sequence[int], k: int | None = None
) -> tuple[list[float | None], list[list[tuple[int, float]] | None]]:
    """For every position ``i``: ``log p(ids[i] | ids[:i])`` (None at 0), and when ``k`` is given the
    ``k`` most likely tokens at ``i`` as ``(id, log-probability)`` pairs (None at 0)."""
    values: list[float | None] = [None]
    tops: list[list[tuple[int, float]] | None] = [None]
    with model.lock, torch.inference_mode():
        hidden, _ = hidden_states(model, input_ids=torch.tensor([list(ids)], device=device_of(model)))
        step = rows_per_chunk(model.arch.vocab_size)
        for begin in range(0, len(ids) - 1, step):
            end = min(len(ids) - 1, begin + step)
            logprobs = log_probs(model, hidden[0, begin:end])  # predicts positions begin+1 .. end
            values += picked(logprobs, list(ids[begin + 1 : end + 1])).tolist()
            if k:
                best = logprobs.topk(k, dim=-1)
                for row_values, row_ids in zip(best.values.tolist(), best.indices.tolist(), strict=True):
                    tops.append(list(zip(row_ids, row_values, strict=True)))
            else:
                tops += [None] * (end - begin)
    return values, tops


def kl_divergence(reference: torch.Tensor | None, other: torch.Tensor | None) -> float:
    """KL(p ‖ q) of two (vocab,) log-probability vectors; NaN when either is missing."""
    if reference is None or other is None:
        return float("nan")
    return float((reference.exp() * (reference - other)).sum())
