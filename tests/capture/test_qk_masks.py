"""Masks the qk rule cannot explain (padding) are stored and honoured; fully masked rows are zero."""

from __future__ import annotations

import numpy as np
import torch

from attnscope.capture import qk
from attnscope.capture.sources import QKSource
from tests.conftest import tiny


def test_left_padding_mask_is_kept_and_matches_eager():
    model = tiny("llama")
    hf = model.model
    ids = torch.tensor([[5, 6, 7, 40, 41, 42, 43, 44, 45, 46]])
    mask = torch.tensor([[0, 0, 0, 1, 1, 1, 1, 1, 1, 1]])  # three left pads
    qk.ensure_registered()
    recorder = qk.QKRecorder.for_model(hf, "causal")
    with torch.inference_mode(), qk.attention_implementation(hf, qk.QK_ATTENTION), recorder.active():
        hf(input_ids=ids, attention_mask=mask)
    assert recorder.masks, "a padding mask is not a plain causal rule and must be stored"
    source = QKSource(records=recorder.records, masks=recorder.masks, biases=recorder.biases)
    with torch.inference_mode(), qk.attention_implementation(hf, "eager"):
        eager = hf(input_ids=ids, attention_mask=mask, output_attentions=True).attentions
    real = np.arange(3, 10)
    for layer, expected in enumerate(eager):
        got = source.rows("decoder", layer, list(range(4)), np.arange(10))  # (heads, query, key)
        np.testing.assert_allclose(got[:, real], expected[0].numpy()[:, real], atol=1e-5)
        assert (got[:, real][:, :, :3] == 0).all(), "no attention to padding"
        assert np.isfinite(got).all()


def test_layers_outside_the_wanted_set_are_not_recorded():
    model = tiny("qwen2")
    recorder = qk.QKRecorder.for_model(model.model, "causal", layers={1})
    qk.ensure_registered()
    with torch.inference_mode(), qk.attention_implementation(model.model, qk.QK_ATTENTION), recorder.active():
        model.model(input_ids=torch.tensor([[1, 2, 3]]))
    assert set(recorder.records) == {("decoder", 1)}
