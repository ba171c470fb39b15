"""The model view's pooled maps, the head atlas and the joint query–key space, against independent
computations: plain transformers eager attention pooled by hand in numpy, scikit-learn's PCA on the
documented feature matrix built here, and eager attention recomputed from the transformed vectors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from attnscope.analysis.atlas import check_projection, project
from attnscope.analysis.qk_space import causal_softmax, joint_space
from attnscope.capture import capture
from attnscope.capture.overview import layer_vectors, pooled_maps
from attnscope.errors import InputError, OutOfRangeError
from attnscope.methods.atlas import head_atlas, qk_projection
from tests.analysis.test_rollout_and_heads import reference_metrics
from tests.conftest import CHINESE, ENGLISH, tiny

TEXT = "The river city traded salt and grain with its neighbours, 我爱中国。"
EAGER_TOLERANCE = 1e-4  # qk recomputation vs eager: hidden states drift by ~1e-6 between SDPA and eager


def eager_maps(model, ids: list[int]) -> list[np.ndarray]:
    """(heads, n, n) float64 per layer from plain transformers, eager, output_attentions=True."""
    with torch.no_grad():
        model.model.set_attn_implementation("eager")
        try:
            out = model.model(torch.tensor([ids]), output_attentions=True)
        finally:
            model.model.set_attn_implementation("sdpa")
    return [a[0].double().numpy() for a in out.attentions]


def pool_by_hand(weights: np.ndarray, factor: int, how: str) -> np.ndarray:
    """(n, m) -> blocks of factor x factor tokens (edge blocks smaller): max, or mean of the real cells."""
    n, m = weights.shape
    rows, cols = -(-n // factor), -(-m // factor)
    out = np.zeros((rows, cols))
    for i in range(rows):
        for j in range(cols):
            block = weights[i * factor : (i + 1) * factor, j * factor : (j + 1) * factor]
            out[i, j] = block.max() if how == "max" else block.mean()
    return out


@pytest.mark.parametrize("family", ["llama", "gemma3"])  # gemma3: sliding-window layers
@pytest.mark.parametrize("pool", ["max", "mean"])
def test_pooled_whole_maps_equal_eager_attention_pooled_by_hand(family, pool):
    model = tiny(family)
    trace = capture(model, TEXT, backend="qk")
    maps = eager_maps(model, trace.token_ids)
    n = len(trace.tokens)
    size = 7
    pooled = pooled_maps(trace, size, pool=pool)
    factor = -(-n // size)
    assert pooled.factor == factor and n % factor  # the edge blocks are partial: their mean counts real cells
    assert pooled.maps.shape == (len(maps), model.arch.heads, -(-n // factor), -(-n // factor))
    for layer, eager in enumerate(maps):
        for head in range(eager.shape[0]):
            expected = pool_by_hand(eager[head], factor, pool)
            np.testing.assert_allclose(pooled.maps[layer, head], expected, atol=EAGER_TOLERANCE)
    whole = pooled_maps(trace, n)  # size >= n: the maps themselves
    assert whole.factor == 1
    np.testing.assert_allclose(whole.maps, np.stack(maps), atol=EAGER_TOLERANCE)


def standardised(columns: np.ndarray) -> np.ndarray:
    std = columns.std(axis=0)
    return np.where(std > 1e-12, (columns - columns.mean(axis=0)) / np.where(std > 1e-12, std, 1), 0.0)


def test_head_atlas_pca_equals_scikit_learn_on_the_documented_features():
    from sklearn.decomposition import PCA

    model = tiny("llama")
    trace = capture(model, TEXT, backend="qk")
    atlas = head_atlas(trace, projection="pca")
    # the feature matrix of analysis.atlas's docstring, built here from eager maps
    maps = eager_maps(model, trace.token_ids)
    n = len(trace.tokens)
    factor = -(-n // 16)
    rows_map, rows_metric = [], []
    for eager in maps:
        metrics = reference_metrics(eager)
        for head in range(eager.shape[0]):
            rows_map.append(pool_by_hand(eager[head], factor, "mean").ravel())
            rows_metric.append([metrics[name][head] for name in metrics])
    flat, table = np.array(rows_map), np.array(rows_metric)
    centred = flat - flat.mean(axis=0)
    features = np.hstack([centred / np.sqrt(flat.var(axis=0).sum()), standardised(table) / np.sqrt(table.shape[1])])
    assert np.allclose(features.var(axis=0)[: flat.shape[1]].sum(), 1) and np.allclose(
        features.var(axis=0)[flat.shape[1] :].sum(), 1
    )
    reference = PCA(n_components=2, svd_solver="full").fit(features)
    expected = reference.transform(features)
    for component in range(2):  # a component's sign is arbitrary
        ours = atlas.projection.coords[:, component]
        sign = np.sign(ours @ expected[:, component])
        np.testing.assert_allclose(ours * sign, expected[:, component], atol=1e-3)
    np.testing.assert_allclose(atlas.projection.explained, reference.explained_variance_ratio_, atol=1e-4)
    assert atlas.layers == [layer for layer in range(3) for _ in range(4)]
    assert atlas.heads == list(range(4)) * 3


@pytest.mark.parametrize("method", ["tsne", "umap"])
def test_tsne_and_umap_are_deterministic_and_keep_alike_heads_together(method):
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(4, 20)) * 3  # four kinds of head, six heads of each, a little apart
    group = np.repeat(np.arange(4), 6)
    features = centres[group] + rng.normal(scale=0.1, size=(24, 20))
    first = project(features, method, seed=3)
    again = project(features, method, seed=3)
    other = project(features, method, seed=4)
    assert first.coords.shape == (24, 2) and first.params["seed"] == 3
    np.testing.assert_array_equal(first.coords, again.coords)
    if method == "umap":  # t-SNE starts from the PCA layout: its seed changes little or nothing
        assert not np.allclose(first.coords, other.coords)
    # every head's nearest neighbour in the projection is a head of its own kind
    distance = np.linalg.norm(first.coords[:, None] - first.coords[None], axis=-1)
    np.fill_diagonal(distance, np.inf)
    assert (group[distance.argmin(axis=1)] == group).all()


def test_projection_refusals_are_one_line_input_errors():
    with pytest.raises(InputError, match="unknown projection 'lda'"):
        check_projection("lda", 12, None, None)
    with pytest.raises(InputError, match="perplexity must be above 0 and below the number of points"):
        check_projection("tsne", 12, 30, None)
    with pytest.raises(InputError, match="at least 4 points"):
        check_projection("tsne", 3, None, None)
    with pytest.raises(InputError, match="n_neighbors must be from 2 to 11"):
        check_projection("umap", 12, None, 12)
    assert check_projection("tsne", 12, None, None) == {"perplexity": pytest.approx(11 / 3)}
    points = np.random.default_rng(0).random((12, 3))
    for method in ("pca", "tsne", "umap"):  # numpy's RandomState takes 0 ≤ seed < 2**32 only
        for seed in (-1, 2**32):
            with pytest.raises(InputError, match="the seed must be an integer from 0 to 4294967295"):
                project(points, method, seed=seed)
    assert project(points, "tsne", seed=2**32 - 1).params["seed"] == 2**32 - 1


@pytest.mark.parametrize("family", ["llama", "qwen2"])  # qwen2: grouped KV heads (4 query heads, 2 key heads)
@pytest.mark.parametrize("text", [ENGLISH, CHINESE])
def test_the_joint_space_leaves_eager_attention_unchanged(family, text):
    model = tiny(family)
    trace = capture(model, text, backend="qk")
    maps = eager_maps(model, trace.token_ids)
    for layer in range(model.arch.layers):
        vectors = layer_vectors(trace, layer, list(range(model.arch.heads)))
        for head in range(model.arch.heads):
            space = joint_space(vectors.queries[head], vectors.keys[head], vectors.scaling)
            # the transform moved the keys: the raw dot products differ, the weights do not
            assert np.abs(space.shift).max() > 1e-3
            weights = causal_softmax(space.queries @ space.keys.T, vectors.query_positions)
            np.testing.assert_allclose(weights, maps[layer][head], atol=EAGER_TOLERANCE)
            # centroids coincide and the mean distances from them match (what s is chosen for)
            np.testing.assert_allclose(space.queries.mean(0), space.keys.mean(0), atol=1e-9)
            spread = [np.linalg.norm(x - x.mean(0), axis=1).mean() for x in (space.queries, space.keys)]
            assert spread[0] == pytest.approx(spread[1], rel=1e-9)


def test_qk_projection_points_subsampling_and_refusals():
    model = tiny("llama")
    trace = capture(model, TEXT, backend="qk")
    n = len(trace.tokens)
    one = qk_projection(trace, 1, 2)
    assert one.heads == [2] and len(one.kinds) == 2 * n and one.total == 2 * n
    assert list(one.positions[:n]) == list(range(n)) and (one.kinds[:n] == 0).all() and (one.kinds[n:] == 1).all()
    every = qk_projection(trace, -1, "all", max_points=40)  # 4 heads x 2 kinds x 5 evenly spaced tokens
    assert every.layer == 2 and every.total == 8 * n and len(every.kinds) == 40
    assert sorted(set(every.point_heads.tolist())) == [0, 1, 2, 3]
    assert list(every.positions[:5]) == list(np.linspace(0, n - 1, 5).round().astype(int))
    for limit in (2, 3, 7, 9):  # fewer than 2 points per (head, kind): the total still stays within max_points
        few = qk_projection(trace, 0, "all", max_points=limit)
        assert len(few.kinds) == len(few.positions) == len(few.point_heads) == len(few.projection.coords) == limit
    with pytest.raises(InputError, match="the seed must be an integer"):
        head_atlas(trace, seed=-1)
    with pytest.raises(OutOfRangeError):
        qk_projection(trace, 3, "all")
    with pytest.raises(OutOfRangeError):
        qk_projection(trace, 0, 4)
    with pytest.raises(InputError, match="max_points must be from 2 to 3,000 for tsne"):
        qk_projection(trace, 0, 0, projection="tsne", max_points=5000)
    with pytest.raises(InputError, match="backend='qk'"):
        qk_projection(capture(model, TEXT, backend="full"), 0, 0)


@pytest.mark.parametrize("pool", ["max", "mean"])
def test_row_sampled_maps_pool_only_the_rows_read(pool):
    model = tiny("llama")
    trace = capture(model, TEXT, backend="qk")
    maps = eager_maps(model, trace.token_ids)
    n = len(trace.tokens)
    factor = -(-n // 4)
    pooled = pooled_maps(trace, 4, pool=pool, rows_per_block=3)
    assert pooled.factor == factor and pooled.rows_per_block == 3
    for block in range(-(-n // factor)):
        start, end = block * factor, min(n, (block + 1) * factor)
        read = np.unique(np.linspace(start, end - 1, 3).round().astype(int))  # first, middle and last row
        for layer, eager in enumerate(maps):
            for head in range(eager.shape[0]):
                expected = (
                    pool_by_hand(eager[head][read], factor, pool)[0]
                    if pool == "max"
                    else [eager[head][read, k * factor : (k + 1) * factor].mean() for k in range(-(-n // factor))]
                )
                np.testing.assert_allclose(pooled.maps[layer, head, block], expected, atol=EAGER_TOLERANCE)
