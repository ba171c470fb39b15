"""Rollout against explicit matrix products; head metrics on hand-set attention patterns."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from attnscope.analysis.heads import head_labels, head_metrics
from attnscope.analysis.rollout import attention_rollout
from attnscope.capture import capture
from attnscope.capture.sources import FullSource
from attnscope.capture.tokens import Token
from attnscope.capture.trace import Trace
from attnscope.errors import InputError
from attnscope.methods import catalogue
from tests.conftest import tiny


def test_rollout_is_the_product_of_residual_mixed_layers():
    trace = capture(tiny("llama"), "rollout over three layers", backend="full")
    n = len(trace.tokens)
    mixed = []
    for layer in range(3):
        heads = trace.source.maps["decoder"][layer].astype(np.float64)  # (heads, query, key), from the eager forward
        a = 0.5 * np.eye(n) + 0.5 * heads.mean(axis=0)
        mixed.append(a / a.sum(axis=1, keepdims=True))
    expected = np.linalg.multi_dot([mixed[2], mixed[1], mixed[0]])
    result = attention_rollout(trace)
    np.testing.assert_allclose(result, expected, atol=1e-10)
    np.testing.assert_allclose(result.sum(axis=1), 1, atol=1e-10)
    assert (result[np.triu_indices(n, 1)] == 0).all()  # causal stays causal
    np.testing.assert_allclose(attention_rollout(trace, residual=1.0), np.eye(n))
    with pytest.raises(InputError, match="every layer"):
        attention_rollout(capture(tiny("llama"), "partial", layers=[0]))


def hand_made_trace(n: int) -> Trace:
    """One layer, three heads with known patterns over n tokens (causal)."""
    previous = np.zeros((n, n))
    previous[0, 0] = 1
    previous[np.arange(1, n), np.arange(n - 1)] = 1
    sink = np.zeros((n, n))
    sink[:, 0] = 1
    uniform = np.tril(np.ones((n, n))) / np.arange(1, n + 1)[:, None]
    maps = {"decoder": {0: np.stack([previous, sink, uniform]).astype(np.float32)}}
    tokens = [Token(i, i, "x", i, i + 1, False) for i in range(n)]
    model = {"kind": "causal", "spec": "hand-made", "stacks": {"decoder": {"layers": 1, "heads": 3, "kv_heads": 3}}}
    return Trace(
        text="x" * n,
        tokens=tokens,
        model=model,
        source=FullSource(maps),
        backend="full",
        predictions=None,
        provenance={},
    )


def test_head_metrics_on_known_patterns():
    n = 12
    metrics = head_metrics(hand_made_trace(n))
    # previous-token head: 1 on every row q >= 1; sink head: only row 1's previous key is the first token
    expected_previous = [1.0, 1 / (n - 1), np.mean([1 / (q + 1) for q in range(1, n)])]
    np.testing.assert_allclose(metrics["previous_token"][0], expected_previous)
    # rows 0 and 1 of the previous-token head sit on the first token
    np.testing.assert_allclose(metrics["sink"][0], [2 / n, 1.0, np.mean([1 / (q + 1) for q in range(n)])])
    np.testing.assert_allclose(metrics["entropy"][0], [0, 0, np.mean([math.log(q + 1) for q in range(n)])])
    np.testing.assert_allclose(metrics["locality"][0][0], (n - 1) / n)  # distance 1 on every row but the first
    np.testing.assert_allclose(metrics["locality"][0][2], np.mean([q / 2 for q in range(n)]))
    # sparsity: share of attendable keys under 1 %: one-hot rows leave q of q+1 keys at zero
    assert metrics["sparsity"][0][1] == pytest.approx(np.mean([q / (q + 1) for q in range(n)]))
    assert metrics["sparsity"][0][2] == 0
    # focus consistency: weight on the usual focus (offset 1; key 0; key 0 of a uniform row = 1/(q+1))
    np.testing.assert_allclose(
        metrics["focus_consistency"][0], [(n - 1) / n, 1.0, np.mean([1 / (q + 1) for q in range(n)])]
    )
    assert head_labels(metrics, n) == [["previous-token", "sink", "broad"]]


def test_catalogue_and_cli_list_the_methods():
    names = {m.name for m in catalogue.methods()}
    assert {"rollout", "head-metrics"} <= names
    assert catalogue.get("rollout").family == "propagation"
    with pytest.raises(InputError, match="unknown method"):
        catalogue.get("nope")
    listing = subprocess.run(
        [sys.executable, "-m", "attnscope", "methods"], capture_output=True, text=True, check=True
    ).stdout
    assert "rollout" in listing and "head-metrics" in listing


def test_heads_cli_json_has_layers_by_heads():
    result = subprocess.run(
        [sys.executable, "-m", "attnscope", "heads", "one two three four", "--model", "tiny:qwen2", "--json", "-q"],
        capture_output=True,
        text=True,
        check=True,
    )
    body = json.loads(result.stdout)
    assert set(body["metrics"]) == {"entropy", "sparsity", "locality", "sink", "previous_token", "focus_consistency"}
    assert np.array(body["metrics"]["entropy"]).shape == (3, 4) and len(body["labels"]) == 3
    expected = head_metrics(capture(tiny("qwen2"), "one two three four"))
    np.testing.assert_allclose(body["metrics"]["locality"], expected["locality"], atol=1e-5)


def test_a_repeated_sequence_lights_up_induction_heads_on_a_real_model():
    from attnscope.analysis.heads import induction_scores
    from attnscope.attribution.probes import repeated_random_words
    from tests.conftest import packaged

    model = packaged("smollm2-135m")
    probe, period = repeated_random_words(model.tokenizer, 40)
    trace = capture(model, probe, predict="none")
    assert len(trace.tokens) == 2 * period
    scores = induction_scores(trace, period)
    first_half = probe[: len(probe) // 2]
    words = [" " + w for w in first_half.split(" ")[1:]]
    control = capture(model, first_half + "".join(reversed(words)), predict="none")  # same words, no repeat order
    assert np.nanmax(scores) > 0.5, "some head should copy from the first occurrence"
    assert np.nanmax(induction_scores(control, period)) < 0.2
    labels = head_labels({**head_metrics(trace), "induction": scores}, len(trace.tokens))
    layer, head = np.unravel_index(np.nanargmax(scores), scores.shape)
    assert labels[layer][head] == "induction"


def reference_metrics(maps: np.ndarray, threshold: float = 0.01) -> dict[str, np.ndarray]:
    """Head metrics of one layer written out here in numpy from eager (heads, n, n) maps."""
    heads, n, _ = maps.shape
    q, k = np.indices((n, n))
    reached = (maps > 0).any(axis=0)  # the keys a row may attend to: causal, and within a sliding window
    entropy = -np.where(maps > 0, maps * np.log(np.where(maps > 0, maps, 1)), 0).sum(-1).mean(-1)
    sparsity = (((maps < threshold) & reached[None]).sum(-1) / reached.sum(-1)[None]).mean(-1)
    locality = (maps * np.abs(q - k)[None]).sum(-1).mean(-1)
    sink = maps[:, :, 0].mean(-1)
    previous = maps[:, np.arange(1, n), np.arange(n - 1)].mean(-1)
    focus = []
    for h in range(heads):
        strongest = maps[h].argmax(-1)
        values, counts = np.unique(strongest, return_counts=True)
        key = values[counts.argmax()]
        values, counts = np.unique(np.arange(n) - strongest, return_counts=True)
        offset = values[counts.argmax()]
        on_key = maps[h, :, key].sum()
        rows = np.arange(n)
        ok = (rows - offset >= 0) & (rows - offset < n)
        on_offset = maps[h, rows[ok], (rows - offset)[ok]].sum()
        focus.append(max(on_key, on_offset) / n)
    return {
        "entropy": entropy,
        "sparsity": sparsity,
        "locality": locality,
        "sink": sink,
        "previous_token": previous,
        "focus_consistency": np.array(focus),
    }


@pytest.mark.parametrize("family", ["llama", "gemma3"])
def test_head_metrics_read_on_the_device_equal_numpy_from_eager_maps(family, device):
    model = tiny(family, device=device)
    text = "Head metrics from queries and keys, read where they are stored. " * 2
    qk = capture(model, text, backend="qk")
    eager = capture(model, text, backend="full")  # maps from transformers' eager output_attentions
    metrics = head_metrics(qk)
    for layer in range(model.arch.layers):
        expected = reference_metrics(eager.source.maps["decoder"][layer].astype(np.float64))
        for name, values in expected.items():
            np.testing.assert_allclose(metrics[name][layer], values, atol=1e-4, err_msg=f"{name} layer {layer}")
