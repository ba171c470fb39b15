"""The independent reference of the tests: transformers' own forward with eager attention and
``output_attentions=True`` on a loaded model — none of attnscope's capture, kernel or reads."""

from __future__ import annotations

import numpy as np
import torch


def eager(model, ids: list[int]) -> tuple[list[np.ndarray], np.ndarray]:
    """(heads, query, key) float64 attention per layer and the next-token probabilities (query, vocab)
    of ``ids`` on ``model`` (a LoadedModel), its attention implementation switched to eager and back."""
    hf = model.model
    previous = hf.config._attn_implementation
    hf.set_attn_implementation("eager")
    try:
        with torch.no_grad():
            out = hf(input_ids=torch.tensor([ids]), output_attentions=True)
    finally:
        hf.set_attn_implementation(previous)
    probs = torch.softmax(out.logits[0].double(), dim=-1).numpy()
    return [a[0].double().numpy() for a in out.attentions], probs
