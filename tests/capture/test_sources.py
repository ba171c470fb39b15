"""The qk source equals transformers' eager attention, and both have the structure attention must have."""

from __future__ import annotations

import numpy as np
import pytest

from attnscope.capture import capture
from tests.conftest import ALL_FAMILIES, CAUSAL_FAMILIES, DEVICES, tiny

TEXT = "The capital of France is Paris; 北京 is China's. 👋🏽 A longer tail so windows matter."


@pytest.fixture(scope="module", params=[(f, d) for d in DEVICES for f in ALL_FAMILIES], ids=lambda p: f"{p[1]}-{p[0]}")
def pair(request):
    family, device = request.param
    model = tiny(family, device=device, dtype="float32")  # eager bf16 rounds its weights: test_dtypes
    return model, capture(model, TEXT, backend="full"), capture(model, TEXT, backend="qk")


def test_qk_equals_full_for_every_layer_head_and_row(pair):
    model, full, qk = pair
    assert full.backend == "full" and qk.backend == "qk"
    assert full.stacks() == qk.stacks() == list(model.arch.stacks)
    for stack in full.stacks():
        assert qk.captured_layers(stack) == list(range(model.arch.stacks[stack].layers))
        for layer in range(full.num_layers(stack)):
            expected = full.attention(layer, stack=stack)  # (heads, query, key)
            actual = qk.attention(layer, stack=stack)
            assert actual.shape == expected.shape
            np.testing.assert_allclose(actual, expected, atol=1e-4, rtol=0)


def test_rows_are_probability_distributions(pair):
    _, full, qk = pair
    for trace in (full, qk):
        for stack in trace.stacks():
            weights = trace.attention(-1, stack=stack)
            assert (weights >= 0).all()
            np.testing.assert_allclose(weights.sum(axis=-1), 1.0, atol=1e-5)


@pytest.mark.parametrize("family", CAUSAL_FAMILIES)
def test_causal_rows_are_zero_above_the_diagonal(family):
    trace = capture(tiny(family), TEXT, backend="qk")
    n = len(trace.tokens)
    above = np.triu(np.ones((n, n), dtype=bool), k=1)
    for layer in range(trace.num_layers()):
        assert (trace.attention(layer)[:, above] == 0).all()


@pytest.mark.parametrize("family", ["mistral", "gemma3", "gemma2"])
def test_sliding_window_layers_are_zero_outside_the_window(family):
    model = tiny(family)
    window = model.arch.sliding_window
    assert window is not None and window < 10
    layer_types = model.arch.layer_types or ["sliding_attention"] * model.arch.layers
    trace = capture(model, TEXT, backend="qk")
    n = len(trace.tokens)
    query, key = np.indices((n, n))
    outside = (query - key) >= window
    for layer, kind in enumerate(layer_types):
        weights = trace.attention(layer)
        if kind == "sliding_attention":
            assert (weights[:, outside] == 0).all(), f"layer {layer} attends outside its window"
        else:
            assert (weights[:, outside] > 0).any(), f"full layer {layer} should reach beyond the window"


def test_encoder_attention_is_bidirectional():
    trace = capture(tiny("bert"), TEXT, backend="qk")
    weights = trace.attention(0)
    n = len(trace.tokens)
    assert (weights[:, np.triu(np.ones((n, n), dtype=bool), k=1)] > 0).all()


def test_cross_attention_runs_from_target_to_source():
    model = tiny("t5")
    trace = capture(model, TEXT, target="Paris est", backend="qk")
    n_src, n_tgt = len(trace.tokens), len(trace.target_tokens)
    assert trace.attention(0, stack="cross").shape == (model.arch.stacks["cross"].heads, n_tgt, n_src)
    assert trace.attention(0, stack="encoder").shape[1:] == (n_src, n_src)
    assert trace.attention(0, stack="decoder").shape[1:] == (n_tgt, n_tgt)
    full = capture(model, TEXT, target="Paris est", backend="full")
    for stack in ("encoder", "decoder", "cross"):
        np.testing.assert_allclose(trace.attention(1, stack=stack), full.attention(1, stack=stack), atol=1e-4)
