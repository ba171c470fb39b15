"""Next-token predictions equal an independent softmax over the model's own logits."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from attnscope.capture import capture
from tests.conftest import CAUSAL_FAMILIES, tiny

TEXT = "Predictions at every position, 中文 too."


def reference_probs(model, ids, device: str = "cpu", **kwargs) -> np.ndarray:
    with torch.no_grad():
        logits = model.model(input_ids=torch.tensor([ids], device=device), **kwargs).logits[0]
    return torch.softmax(logits.double(), dim=-1).cpu().numpy()


@pytest.mark.parametrize("family", CAUSAL_FAMILIES)
@pytest.mark.parametrize("backend", ["full", "qk"])
def test_causal_top_k_is_the_softmax_of_the_model_logits(family, backend):
    model = tiny(family)
    trace = capture(model, TEXT, backend=backend, top_k=5, predict="all")
    ids = trace.token_ids
    probs = reference_probs(model, ids)  # (positions, vocab), computed by the plain HF forward
    expected_ids = np.argsort(-probs, axis=-1, kind="stable")[:, :5]
    pred = trace.predictions
    assert pred is not None and pred.top_ids.shape == (len(ids), 5)
    np.testing.assert_allclose(pred.top_probs, np.take_along_axis(probs, pred.top_ids, -1), atol=1e-5)
    np.testing.assert_allclose(np.sort(pred.top_probs, axis=-1)[:, ::-1], pred.top_probs)
    np.testing.assert_allclose(
        pred.top_probs[:, 0], np.take_along_axis(probs, expected_ids[:, :1], -1)[:, 0], atol=1e-5
    )
    following = np.array(ids[1:])
    np.testing.assert_allclose(pred.next_prob[:-1], probs[np.arange(len(ids) - 1), following], atol=1e-5)
    assert np.isnan(pred.next_prob[-1])
    top = trace.top_predictions(-1, 3)
    assert [c.id for c in top] == list(pred.top_ids[-1, :3])
    assert all(c.token == model.tokenizer.decode([c.id]) for c in top)


def test_seq2seq_predictions_follow_the_decoder():
    model = tiny("bart")
    trace = capture(model, TEXT, target="Pré", predict="all")
    target_ids = [t.id for t in trace.target_tokens]
    probs = reference_probs(model, trace.token_ids, decoder_input_ids=torch.tensor([target_ids]))
    assert trace.predictions.top_ids.shape[0] == len(target_ids)
    np.testing.assert_allclose(trace.predictions.top_probs[:, 0], probs.max(axis=-1), atol=1e-5)


def test_masked_lm_predicts_each_position():
    model = tiny("bert")
    trace = capture(model, TEXT, predict="all")
    probs = reference_probs(model, trace.token_ids)
    np.testing.assert_allclose(trace.predictions.top_probs[:, 0], probs.max(axis=-1), atol=1e-5)
    assert np.isnan(trace.predictions.next_prob).all()


@pytest.mark.parametrize("family", ["llama", "gemma3"])
def test_predictions_are_computed_when_asked_for(family, device, tmp_path):
    """By default only the last position goes through the LM head; any other position does when it
    is first asked for, with the numbers of the plain forward; a saved trace holds every position.
    float32 on every device: in bf16 the LM head of one position and of all rounds differently."""
    model = tiny(family, device=device, dtype="float32")
    trace = capture(model, TEXT, top_k=5)
    ids = trace.token_ids
    pred = trace.predictions
    assert (pred.top_ids[:-1] == -1).all() and np.isnan(pred.next_prob[:-1]).all()  # nothing but the last
    assert pred.computed(len(ids) - 1)
    probs = reference_probs(model, ids, device=device)
    top = trace.top_predictions(3, 5)  # computed now
    assert pred.computed(3) and not pred.computed(2)
    np.testing.assert_allclose([c.prob for c in top], np.sort(probs[3])[::-1][:5], atol=1e-5)
    assert [c.token for c in top] == [model.tokenizer.decode([c.id]) for c in top]
    np.testing.assert_allclose(pred.next_prob[3], probs[3, ids[4]], atol=1e-5)
    loaded = type(trace).load(trace.save(tmp_path / "t.safetensors"))
    np.testing.assert_allclose(loaded.predictions.top_probs, np.sort(probs, axis=-1)[:, ::-1][:, :5], atol=1e-5)
    np.testing.assert_allclose(loaded.predictions.next_prob[:-1], probs[np.arange(len(ids) - 1), ids[1:]], atol=1e-5)


@pytest.mark.parametrize("family", ["bart", "bert"])
def test_encoder_models_reduce_their_logits_at_capture(family):
    """They return every position's logits anyway: all predictions are made at capture and the
    (N x vocab) logits are not kept alive for later."""
    model = tiny(family, device="cpu")
    trace = capture(model, TEXT, **({"target": "Pré"} if family == "bart" else {}))
    pred = trace.predictions
    assert pred.compute_rows is None and all(pred.computed(p) for p in range(len(pred)))
