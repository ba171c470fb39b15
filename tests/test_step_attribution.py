"""Per-step attribution of a generation, against independent computations written here: one plain
transformers forward and backward per step over the prompt + answer prefix (gradients), one forward
per removed or masked token (occlusion), eager attention maps (attention, rollout)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from attnscope.capture.generation import generate
from attnscope.errors import InputError
from attnscope.methods import catalogue
from attnscope.methods.steps import step_attribution
from tests.conftest import ENGLISH, tiny

NEW = 5
# fp32: the whole answer at once against one prefix per step, |difference| <= 2e-5 + 1e-3 x |expected|


@pytest.fixture(scope="module")
def generation():
    model = tiny("llama", device="cpu")
    return model, generate(model, ENGLISH, max_new_tokens=NEW)


def prefix_logprob(model, ids: list[int], embeds: torch.Tensor | None = None) -> torch.Tensor:
    """log p(ids[-1] | ids[:-1]) by a plain forward (from ``embeds`` of ids[:-1] when given)."""
    hf = model.model
    out = hf(input_ids=torch.tensor([ids[:-1]])) if embeds is None else hf(inputs_embeds=embeds[None])
    return torch.log_softmax(out.logits[0, -1].double(), dim=-1)[ids[-1]]


def test_gradient_methods_equal_one_backward_per_step(generation):
    model, trace = generation
    ids = [t.id for t in trace.tokens]
    embedding = model.model.get_input_embeddings()
    results = {m: step_attribution(model, trace, m) for m in ("grad-norm", "grad-x-input")}
    for row, step in enumerate(trace.steps):
        p = step.position
        embeds = embedding(torch.tensor(ids[:p])).detach().float().requires_grad_(True)
        (gradient,) = torch.autograd.grad(prefix_logprob(model, ids[: p + 1], embeds), embeds)
        gradient = gradient.double()
        expected = {
            "grad-norm": gradient.norm(dim=-1).numpy(),
            "grad-x-input": (gradient * embeds.detach().double()).sum(-1).numpy(),
        }
        for method, result in results.items():
            np.testing.assert_allclose(result.scores[row, :p], expected[method], rtol=1e-3, atol=2e-5)
            assert np.all(result.scores[row, p:] == 0)
    assert results["grad-x-input"].positions == [s.position for s in trace.steps]


def test_integrated_gradients_equal_a_hand_written_path_integral(generation):
    model, trace = generation
    ids = [t.id for t in trace.tokens]
    embedding = model.model.get_input_embeddings()
    result = step_attribution(model, trace, "integrated-gradients", steps=6, baseline="zero")
    assert result.details["steps"] == 6
    for row, step in enumerate(trace.steps):
        p = step.position
        x = embedding(torch.tensor(ids[:p])).detach().float()
        start = torch.zeros_like(x)
        start[0] = x[0]  # the first position keeps its embedding (the attention sink)
        for i, token in enumerate(ids[:p]):
            if token in model.tokenizer.all_special_ids:
                start[i] = x[i]
        total = torch.zeros_like(x, dtype=torch.float64)
        for k in range(6):
            point = (start + (k + 0.5) / 6 * (x - start)).requires_grad_(True)
            (gradient,) = torch.autograd.grad(prefix_logprob(model, ids[: p + 1], point), point)
            total += gradient.double()
        expected = ((x - start).double() * total / 6).sum(-1).numpy()
        np.testing.assert_allclose(result.scores[row, :p], expected, rtol=1e-3, atol=2e-5)
        gap = prefix_logprob(model, ids[: p + 1], x).item() - prefix_logprob(model, ids[: p + 1], start).item()
        assert result.details["delta"][row] == pytest.approx(expected.sum() - gap, abs=1e-5)


@pytest.mark.parametrize("mode", ["remove", "mask"])
def test_occlusion_equals_one_forward_per_occluded_token(generation, mode):
    model, trace = generation
    ids = [t.id for t in trace.tokens]
    result = step_attribution(model, trace, "occlusion", mode=mode)
    replacement = model.tokenizer.unk_token_id if mode == "mask" else None
    if mode == "mask" and model.tokenizer.mask_token_id is not None:
        replacement = model.tokenizer.mask_token_id
    for row, step in enumerate(trace.steps):
        p = step.position
        with torch.no_grad():
            base = prefix_logprob(model, ids[: p + 1]).item()
            for j in range(p):
                if mode == "remove":
                    changed = ids[:j] + ids[j + 1 : p + 1]
                    if len(changed) < 2:
                        continue
                else:
                    changed = [replacement if i == j else t for i, t in enumerate(ids[: p + 1])]
                expected = base - prefix_logprob(model, changed).item()
                assert result.scores[row, j] == pytest.approx(expected, abs=1e-5), (row, j)


def test_attention_and_rollout_rows_equal_eager_maps(generation):
    model, trace = generation
    ids = [t.id for t in trace.tokens]
    with torch.no_grad():
        model.model.set_attn_implementation("eager")
        try:
            maps = [a[0].double().numpy() for a in model.model(torch.tensor([ids]), output_attentions=True).attentions]
        finally:
            model.model.set_attn_implementation("sdpa")
    queries = [s.position - 1 for s in trace.steps]
    attention = step_attribution(None, trace, "attention")  # all layers (mean), mean of heads: the defaults
    mean = np.mean([m.mean(axis=0) for m in maps], axis=0)
    for row, q in enumerate(queries):
        np.testing.assert_allclose(attention.scores[row, : q + 1], mean[q, : q + 1], atol=1e-5)
    rollout = step_attribution(None, trace, "rollout", residual=0.5)
    product = np.eye(len(ids))
    for layer_map in maps:
        mixed = 0.5 * np.eye(len(ids)) + 0.5 * layer_map.mean(axis=0)
        product = (mixed / mixed.sum(axis=-1, keepdims=True)) @ product
    np.testing.assert_allclose(
        rollout.scores, np.where(np.arange(len(ids)) < np.array(queries)[:, None] + 1, product[queries], 0), atol=1e-5
    )


def test_refusals(generation):
    model, trace = generation
    with pytest.raises(InputError, match="cannot attribute"):
        step_attribution(model, trace, "flow")
    with pytest.raises(InputError, match="runs the model"):
        step_attribution(None, trace, "grad-x-input")
    with pytest.raises(InputError, match="made with"):
        step_attribution(tiny("qwen2", device="cpu"), trace, "grad-norm")
    with pytest.raises(InputError, match="steps"):
        step_attribution(model, trace, "integrated-gradients", steps=0)
    with pytest.raises(InputError, match="encoder-decoder"):
        step_attribution(
            tiny("t5", device="cpu"), generate(tiny("t5", device="cpu"), ENGLISH, max_new_tokens=2), "grad-norm"
        )
    with pytest.raises(InputError, match="generation"):
        from attnscope.capture import capture

        step_attribution(model, capture(model, ENGLISH), "attention")
    assert catalogue.step_names() == [  # the catalogue says which methods score steps (written out here)
        "attention",
        "rollout",
        "grad-norm",
        "grad-x-input",
        "integrated-gradients",
        "occlusion",
    ]
