"""The attention graph and the flow Sankey against plain transformers: eager attention
(``output_attentions=True``) thresholded and rolled out by hand here, never by attnscope's own code."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from attnscope.analysis import graph as graph_module
from attnscope.analysis.graph import attention_graph
from attnscope.analysis.sankey import flow_sankey
from attnscope.capture import capture
from attnscope.errors import InputError, OutOfRangeError
from tests.conftest import CHINESE, ENGLISH, tiny

WEIGHT_TOLERANCE = 1e-4  # attnscope's recomputed attention (fp32) vs the eager forward's
LONG_TEXT = " ".join(f"word{i} and more" for i in range(12))  # with ROW_CHUNK set to 16: chunks merged


def eager_attention(loaded, text: str) -> tuple[list[int], np.ndarray]:
    """(ids, (layers, heads, query, key) float64) from the model's own eager forward."""
    tokenizer, hf = loaded.tokenizer, loaded.model
    ids = list(tokenizer(text)["input_ids"])
    previous = hf.config._attn_implementation
    with loaded.lock, torch.no_grad():
        hf.set_attn_implementation("eager")
        try:
            out = hf(input_ids=torch.tensor([ids], device=hf.device), output_attentions=True)
        finally:
            hf.set_attn_implementation(previous)
    return ids, np.stack([a[0].double().cpu().numpy() for a in out.attentions])


def combine(maps: np.ndarray, head: object) -> np.ndarray:
    """(query, key) one layer's (heads, query, key) maps combined as the head selector says."""
    if head == "mean":
        return maps.mean(axis=0)
    if head == "max":
        return maps.max(axis=0)
    if isinstance(head, list):
        return maps[head].mean(axis=0)
    return maps[head]


def hand_edges(weights: np.ndarray, threshold: float) -> dict[tuple[int, int], float]:
    """{(query, key): weight} for every weight >= threshold and > 0, by plain loops."""
    edges = {}
    for query in range(weights.shape[0]):
        for key in range(weights.shape[1]):
            if weights[query, key] >= threshold and weights[query, key] > 0:
                edges[(query, key)] = float(weights[query, key])
    return edges


def near(weights: np.ndarray, threshold: float) -> set[tuple[int, int]]:
    """Pairs too close to the threshold to say which side fp32 puts them (left out of set comparisons)."""
    rows, cols = np.nonzero(np.abs(weights - threshold) < WEIGHT_TOLERANCE)
    return set(zip(rows.tolist(), cols.tolist(), strict=True))


@pytest.mark.parametrize(
    ("family", "text", "layer", "head", "threshold"),
    [
        ("llama", ENGLISH, -1, "mean", 0.1),
        ("qwen2", CHINESE, 0, "max", 0.2),
        ("gpt2", CHINESE, 1, 2, 0.05),
        ("llama", LONG_TEXT, 1, [0, 2], 0.1),
    ],
)
def test_graph_edges_are_the_eager_weights_over_the_threshold(family, text, layer, head, threshold, monkeypatch):
    monkeypatch.setattr(graph_module, "ROW_CHUNK", 16)  # the rows are read in several chunks and merged
    model = tiny(family)
    ids, maps = eager_attention(model, text)
    trace = capture(model, text)
    assert trace.token_ids == ids
    assert len(ids) > 16
    weights = combine(maps[layer], head)  # (query, key)
    expected = hand_edges(weights, threshold)
    graph = attention_graph(trace, layer=layer, head=head, threshold=threshold, max_edges=5000)
    got = {(int(q), int(k)): float(w) for q, k, w in zip(graph.queries, graph.keys, graph.weights, strict=True)}
    unsure = near(weights, threshold)
    assert set(got) - unsure == set(expected) - unsure
    for pair, weight in got.items():
        assert weight == pytest.approx(weights[pair], abs=WEIGHT_TOLERANCE)
    assert abs(graph.above_threshold - len(expected)) <= len(unsure)
    assert list(graph.weights) == sorted(graph.weights, reverse=True)  # heaviest first
    assert graph.query_nodes == sorted({q for q, _ in got}) and graph.key_nodes == sorted({k for _, k in got})


def test_graph_keeps_the_heaviest_edges_when_capped(monkeypatch):
    monkeypatch.setattr(graph_module, "ROW_CHUNK", 16)
    model = tiny("llama")
    _, maps = eager_attention(model, LONG_TEXT)
    weights = maps[2].mean(axis=0)
    expected = sorted(hand_edges(weights, 0.05).values(), reverse=True)
    graph = attention_graph(capture(model, LONG_TEXT), layer=2, threshold=0.05, max_edges=40)
    assert len(graph.weights) == 40 and len(expected) > 40
    assert abs(graph.above_threshold - len(expected)) <= len(near(weights, 0.05))
    np.testing.assert_allclose(graph.weights, expected[:40], atol=WEIGHT_TOLERANCE)


def hand_rollout(maps: np.ndarray, head: object, residual: float) -> list[np.ndarray]:
    """Per layer (query, key) ``r·I + (1 − r)·A`` with rows renormalised, written out here."""
    mixed = []
    for layer_maps in maps:
        a = combine(layer_maps, head)
        m = residual * np.eye(a.shape[0]) + (1 - residual) * a
        mixed.append(m / m.sum(axis=1, keepdims=True))
    return mixed


@pytest.mark.parametrize(
    ("family", "text", "head", "residual", "top", "picked"),
    [
        ("llama", ENGLISH, "mean", 0.5, 3, []),
        ("qwen2", CHINESE, "mean", 0.5, 4, [2, -4]),
        ("gpt2", ENGLISH, 1, 0.3, 2, [5]),
    ],
)
def test_sankey_links_are_rollout_by_hand_and_conserved(family, text, head, residual, top, picked):
    model = tiny(family)
    _, maps = eager_attention(model, text)
    mixed = hand_rollout(maps, head, residual)
    n_layers, n = len(mixed), mixed[0].shape[0]
    target = n - 1
    # s_L = e_t, s_b = s_{b+1} · Â_b, by plain loops over tokens
    shares = [np.zeros(n) for _ in range(n_layers + 1)]
    shares[n_layers][target] = 1.0
    for layer in range(n_layers - 1, -1, -1):
        for i in range(n):
            for j in range(n):
                shares[layer][j] += shares[layer + 1][i] * mixed[layer][i, j]
    product = mixed[0]
    for layer in range(1, n_layers):
        product = mixed[layer] @ product
    np.testing.assert_allclose(shares[0], product[target], atol=1e-12)  # the rollout row R[t, :]

    sankey = flow_sankey(capture(model, text), top=top, tokens=picked, head=head, residual=residual)
    ranked = sorted(range(n), key=lambda i: (-shares[0][i], i))[:top]
    chosen = sorted({target, *ranked, *(p % n for p in picked)})
    if any(abs(shares[0][ranked[-1]] - shares[0][i]) < 1e-5 for i in range(n) if i not in ranked):
        pytest.skip("a near tie at the top-k boundary: fp32 may pick either")
    assert sankey.tokens == chosen and sankey.target == target
    group = {token: g for g, token in enumerate(chosen)}
    other = len(chosen)
    values = np.zeros((n_layers + 1, other + 1))
    links = np.zeros((n_layers, other + 1, other + 1))
    for b in range(n_layers + 1):
        for i in range(n):
            values[b, group.get(i, other)] += shares[b][i]
    for layer in range(n_layers):
        for i in range(n):  # above
            for j in range(n):  # below
                links[layer, group.get(i, other), group.get(j, other)] += shares[layer + 1][i] * mixed[layer][i, j]
    np.testing.assert_allclose(sankey.values, values, atol=1e-5)
    np.testing.assert_allclose(sankey.links, links, atol=1e-5)
    # conservation: a node sends on what it receives; every layer carries the whole prediction
    np.testing.assert_allclose(sankey.links.sum(axis=1), sankey.values[:-1], atol=1e-12)
    np.testing.assert_allclose(sankey.links.sum(axis=2), sankey.values[1:], atol=1e-12)
    np.testing.assert_allclose(sankey.links.sum(axis=(1, 2)), 1.0, atol=1e-9)
    assert (sankey.links >= 0).all()


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"threshold": -0.1}, InputError, "between 0 and 1"),
        ({"threshold": 1.5}, InputError, "between 0 and 1"),
        ({"threshold": math.nan}, InputError, "between 0 and 1"),
        ({"threshold": math.inf}, InputError, "between 0 and 1"),
        ({"max_edges": 0}, InputError, "max_edges"),
        ({"layer": 99}, OutOfRangeError, "layer 99 out of range"),
        ({"layer": "0-1"}, InputError, "one layer"),
        ({"head": "all"}, InputError, "not all"),
        ({"head": 17}, OutOfRangeError, "head 17 out of range"),
    ],
)
def test_graph_refuses_bad_options(options, error, message):
    trace = capture(tiny("llama"), ENGLISH)
    with pytest.raises(error, match=message):
        attention_graph(trace, **options)


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"tokens": [99]}, OutOfRangeError, "token 99 out of range"),
        ({"query": -99}, OutOfRangeError, "out of range"),
        ({"top": 50}, InputError, "top must be"),
        ({"residual": math.nan}, InputError, "residual"),
        ({"residual": 1.5}, InputError, "residual"),
        ({"head": "all"}, InputError, "not all"),
    ],
)
def test_sankey_refuses_bad_options(options, error, message):
    trace = capture(tiny("llama"), ENGLISH)
    with pytest.raises(error, match=message):
        flow_sankey(trace, **options)


def test_sankey_refuses_cross_attention_and_missing_layers():
    with pytest.raises(InputError, match="cross"):
        flow_sankey(capture(tiny("t5"), "a short text", target="eine"), stack="cross")
    with pytest.raises(InputError, match="every layer"):
        flow_sankey(capture(tiny("llama"), ENGLISH, layers=[0]))


def test_encoder_decoder_sankey_follows_the_decoder_by_default():
    """An encoder–decoder's default stack is cross-attention, which the Sankey cannot walk: with no
    stack it takes the decoder (the prediction's stack); an explicit cross is still refused."""
    trace = capture(tiny("t5"), "The cat sat on the mat.")
    default, decoder = flow_sankey(trace, top=2), flow_sankey(trace, top=2, stack="decoder")
    assert default.stack == "decoder"
    np.testing.assert_array_equal(default.values, decoder.values)
    with pytest.raises(InputError, match="self-attention stack"):
        flow_sankey(trace, stack="cross")
