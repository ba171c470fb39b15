"""Blocks and tile pyramids equal the full computation, and long maps never allocate N x N."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from attnscope.analysis.heads import head_metrics
from attnscope.capture import capture
from attnscope.capture.records import LayerRecord
from attnscope.capture.sources import QKSource
from attnscope.capture.tiles import TileCache, TilePyramid, block, levels_for
from attnscope.capture.tokens import Token
from attnscope.capture.trace import Trace
from attnscope.errors import OutOfRangeError
from tests.conftest import ALL_FAMILIES, tiny

LONG_TEXT = "Tiles: 北京 and Paris, again. " * 5


def reference_pool(matrix: np.ndarray, factor: int) -> np.ndarray:
    """Max over factor x factor blocks, written with explicit loops."""
    rows, cols = matrix.shape
    out = np.zeros((-(-rows // factor), -(-cols // factor)), dtype=np.float32)
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            out[i, j] = matrix[i * factor : (i + 1) * factor, j * factor : (j + 1) * factor].max()
    return out


@pytest.mark.parametrize("family", ALL_FAMILIES)
def test_blocks_equal_the_eager_maps_for_every_family(family):
    model = tiny(family)
    target = "a short target" if family in ("t5", "bart") else None
    qk = capture(model, LONG_TEXT, target=target, backend="qk", predict="none")
    full = capture(model, LONG_TEXT, target=target, backend="full", predict="none")
    for stack in qk.stacks():
        n_query, n_key = qk.source.shape(stack)
        for layer in qk.captured_layers(stack):
            for head in (0, qk.num_heads(stack) - 1, "mean", "max"):
                expected = full.attention(layer, head, stack=stack)
                rows, cols = slice(n_query // 3, n_query), slice(n_key // 5, n_key - 1)
                got = block(qk, layer, head, rows, cols, stack=stack)
                np.testing.assert_allclose(
                    got, expected[rows, cols], atol=1e-5, err_msg=f"{family} {stack} {layer} {head}"
                )


@pytest.mark.parametrize("family", ["llama", "mistral", "gemma3"])  # grouped KV, sliding windows
def test_every_pyramid_level_is_the_max_pool_of_the_full_map(family):
    model = tiny(family)
    qk = capture(model, LONG_TEXT, backend="qk", predict="none")
    full = capture(model, LONG_TEXT, backend="full", predict="none")
    n = len(qk.tokens)
    tile = 16
    for layer, head in ((0, 1), (-1, "max")):
        pyramid = TilePyramid(qk, layer, head, tile=tile)
        assert pyramid.levels == levels_for(n, tile) and pyramid.grid(pyramid.levels - 1) == (1, 1)
        expected_map = full.attention(layer, head)
        for level in range(pyramid.levels):
            factor = 1 << level
            pooled = reference_pool(expected_map, factor)
            rows, cols = pyramid.grid(level)
            assembled = np.zeros((rows * tile, cols * tile), dtype=np.float32)
            for ty in range(rows):
                for tx in range(cols):
                    piece = pyramid.get(level, ty, tx)
                    assembled[ty * tile : ty * tile + piece.shape[0], tx * tile : tx * tile + piece.shape[1]] = piece
            np.testing.assert_allclose(assembled[: pooled.shape[0], : pooled.shape[1]], pooled, atol=1e-5)
        # the top tile's maximum is the map's maximum
        assert pyramid.get(pyramid.levels - 1, 0, 0).max() == pytest.approx(expected_map.max(), abs=1e-5)
    with pytest.raises(OutOfRangeError):
        pyramid.get(pyramid.levels, 0, 0)
    with pytest.raises(OutOfRangeError):
        pyramid.get(0, 999, 0)


def test_tile_cache_is_an_lru_bounded_in_bytes():
    cache = TileCache(max_bytes=3 * 1024)
    for index in range(5):
        cache.put(index, np.zeros(256, dtype=np.float32))  # 1 KB each
    assert len(cache) == 3 and cache.bytes <= 3 * 1024
    assert cache.get(0) is None and cache.get(4) is not None
    cache.get(2)
    cache.put(5, np.zeros(256, dtype=np.float32))
    assert cache.get(3) is None and cache.get(2) is not None  # 3 was the least recently used


def synthetic_qk(n: int, heads: int = 2, dim: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """Random (heads, n, dim) queries and (1, n, dim) keys, the same for the same n."""
    rng = np.random.default_rng(0)
    return rng.standard_normal((heads, n, dim), dtype=np.float32), rng.standard_normal((1, n, dim), dtype=np.float32)


def synthetic_trace(n: int, heads: int = 2, dim: int = 16) -> Trace:
    """A causal qk trace of n tokens from random queries/keys (no model: lengths beyond tiny contexts)."""
    query, key = synthetic_qk(n, heads, dim)
    record = LayerRecord(
        query=query,
        key=key,
        query_positions=np.arange(n),
        scaling=dim**-0.5,
        softcap=None,
        causal=True,
        window=None,
    )
    source = QKSource(records={("decoder", 0): record}, masks=[], biases=[])
    tokens = [Token(i, 0, "x", i, i + 1, False) for i in range(n)]
    model = {"kind": "causal", "spec": "synthetic", "stacks": {"decoder": {"layers": 1, "heads": heads}}}
    return Trace("x" * n, tokens, model, source, "qk", None, {})


PEAK_GROWTH = """
import resource, sys
import numpy as np
from tests.capture.test_tiles import synthetic_trace
trace = synthetic_trace(600)
try:  # the same work on a short trace first: torch's code and thread pools are loaded
    exec(sys.argv[2])
except Exception:  # a tile beyond the short map
    pass
trace = synthetic_trace(int(sys.argv[1]))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
exec(sys.argv[2])
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print((after - before) / 1024)  # MiB the peak resident size grew by
"""


def peak_growth_mb(n: int, work: str) -> float:
    """How far ``work`` (Python run on ``trace``, a synthetic n-token trace) raises the peak resident
    memory of a fresh process: counts numpy and torch alike (tracemalloc sees numpy only)."""
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", PEAK_GROWTH, str(n), work], cwd=root, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    return float(done.stdout.strip().splitlines()[-1])


def test_long_maps_are_never_materialised():
    n = 8192
    full_map_mb = n * n * 4 / 2**20  # 256 MB per head
    work = """
from attnscope.capture.tiles import TileCache, TilePyramid
cache = TileCache(max_bytes=16 * 2**20)
pyramid = TilePyramid(trace, 0, "mean", cache=cache)
pyramid.get(pyramid.levels - 1, 0, 0); pyramid.get(2, 3, 1); pyramid.get(0, 20, 7)
trace.attention(0, "mean", rows=[trace.source.shape("decoder")[0] - 1])
"""
    growth = peak_growth_mb(n, work)  # measured 69 MB (chunk temporaries and the allocator's arenas)
    assert growth < full_map_mb / 2, f"peak grew by {growth:.0f} MB"  # half of one head's map

    trace = synthetic_trace(n)
    cache = TileCache(max_bytes=16 * 2**20)  # the LRU bounds what stays; the working set is chunked
    pyramid = TilePyramid(trace, 0, "mean", cache=cache)
    top = pyramid.get(pyramid.levels - 1, 0, 0)
    middle = pyramid.get(2, 3, 1)
    detail = pyramid.get(0, 20, 7)
    row = trace.attention(0, "mean", rows=[n - 1])
    assert cache.bytes <= 16 * 2**20
    assert top.shape == (256, 256) and middle.shape == (256, 256) and detail.shape == (256, 256)
    np.testing.assert_allclose(row.sum(), 1, atol=1e-4)
    # spot-check the streamed tile against a direct float64 computation of its rows
    q, k = synthetic_qk(n)
    rows = np.arange(20 * 256, 21 * 256)
    expected = np.zeros((256, 256))
    for h in range(2):
        scores = (q[h, rows] @ k[0].T) * 16**-0.5
        scores[np.arange(n)[None, :] > rows[:, None]] = -np.inf
        weights = np.exp(scores - scores.max(axis=1, keepdims=True))
        weights /= weights.sum(axis=1, keepdims=True)
        expected += weights[:, 7 * 256 : 8 * 256] / 2
    np.testing.assert_allclose(detail, expected, atol=1e-5)


def test_head_metrics_stream_through_long_inputs():
    n = 4096
    growth = peak_growth_mb(n, "from attnscope.analysis.heads import head_metrics; head_metrics(trace)")
    # measured 65 MB; a direct computation holds (heads, N, N) float64 = 256 MB
    assert growth < (2 * n * n * 8 / 2**20) / 2, f"peak grew by {growth:.0f} MB"
    metrics = head_metrics(synthetic_trace(n))
    small = synthetic_trace(300)
    chunked = head_metrics(small)
    import attnscope.analysis.heads as heads_module

    whole = heads_module.CHUNK_ELEMENTS
    try:
        heads_module.CHUNK_ELEMENTS = 10**9  # one chunk: the direct computation
        direct = head_metrics(small)
    finally:
        heads_module.CHUNK_ELEMENTS = whole
    heads_module.CHUNK_ELEMENTS = 8 * 2 * 300 * 7  # 7 rows per chunk
    try:
        streamed = head_metrics(small)
    finally:
        heads_module.CHUNK_ELEMENTS = whole
    for name in direct:
        np.testing.assert_allclose(streamed[name], direct[name], rtol=1e-6, err_msg=name)
        np.testing.assert_allclose(chunked[name], direct[name], rtol=1e-6, err_msg=name)
    assert np.isfinite(metrics["entropy"]).all()
