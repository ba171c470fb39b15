"""Whole attention maps of every layer × head, pooled small (the model view, the head atlas), and the
queries and keys of one layer as plain arrays (the joint query–key projection).

Pooling: a map of ``N_q × N_k`` tokens is cut into square blocks of ``f × f`` tokens with
``f = ceil(max(N_q, N_k) / size)``, giving ``ceil(N_q / f) × ceil(N_k / f)`` cells (at most
``size × size``). A cell is the **maximum** of its block (``pool="max"``: a sharp head stays
visible) or its **mean** over the block's real cells (``pool="mean"``: the attention mass of the
block divided by its cell count; edge blocks are smaller). ``f = 1`` leaves the map as it is.

Long inputs can be estimated instead: with ``rows_per_block = r`` only ``r`` evenly spaced query
rows of each block are read (each with all its keys), so a cell is the max or mean over those rows.

Nothing here materialises ``N × N`` for every head at once: each layer's rows stream through in
chunks, all heads together, on the device where the trace keeps its
attention (the ``qk`` stash, or the eager maps), with at most about
:func:`~attnscope.capture.kernel.chunk_elements` float32 weights per chunk; only the pooled cells
come back. Time is ``O(layers · heads · R · N)`` for the ``R`` query rows read (``R = N``: exact).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from attnscope.capture import kernel
from attnscope.capture.records import to_numpy
from attnscope.capture.sources import QKSource, source_device
from attnscope.capture.trace import Trace
from attnscope.errors import InputError
from attnscope.progress import Progress, report

Pool = Literal["max", "mean"]
POOLS: tuple[str, ...] = ("max", "mean")


@dataclass(frozen=True)
class PooledMaps:
    maps: np.ndarray  # (layers, heads, cells_q, cells_k) float32
    layers: list[int]  # the captured layer index of each row of ``maps``
    factor: int  # f: each cell covers f × f tokens (1: not pooled)
    pool: str  # "max" | "mean"
    shape: tuple[int, int]  # (N_q, N_k) of the maps before pooling
    rows_per_block: int | None = None  # None: every query row; else the rows read in each block of f


def pool_factor(n_query: int, n_key: int, size: int) -> int:
    """f = ceil(max(N_q, N_k) / size): the side of the square blocks pooled into one cell."""
    if size < 1:
        raise InputError(f"the pooled size must be at least 1, not {size}")
    return max(1, -(-max(n_query, n_key) // size))


def block_rows(n_query: int, factor: int, rows_per_block: int | None) -> np.ndarray:
    """(rows,) int64 query rows read: all of them, or ``rows_per_block`` evenly spaced rows of each
    block of ``factor`` rows (its first and last included)."""
    if rows_per_block is None or rows_per_block >= factor:
        return np.arange(n_query, dtype=np.int64)
    picked = [
        np.linspace(start, min(n_query, start + factor) - 1, num=rows_per_block).round().astype(np.int64)
        for start in range(0, n_query, factor)
    ]
    return np.unique(np.concatenate(picked))


def _pool_keys(weights: torch.Tensor, factor: int, n_key: int, pool: str) -> torch.Tensor:
    """(heads, rows, n_key) -> (heads, rows, ceil(n_key/f)) maxima or sums over blocks of f keys."""
    heads, rows, _ = weights.shape
    width = -(-n_key // factor)
    padded = torch.nn.functional.pad(weights, (0, width * factor - n_key))
    blocks = padded.reshape(heads, rows, width, factor)
    return blocks.amax(dim=3) if pool == "max" else blocks.sum(dim=3)


def _cell_counts(n: int, factor: int) -> np.ndarray:
    """(ceil(n/f),) how many real tokens each block of ``f`` covers (the last may be fewer)."""
    cells = -(-n // factor)
    counts = np.full(cells, factor, dtype=np.float64)
    counts[-1] = n - factor * (cells - 1)
    return counts


def pooled_maps(
    trace: Trace,
    size: int,
    *,
    pool: str = "max",
    stack: str | None = None,
    rows_per_block: int | None = None,
    progress: Progress | None = None,
) -> PooledMaps:
    """Every captured layer's heads' whole maps pooled to at most ``size × size`` cells (see the
    module docstring). With ``rows_per_block`` only that many evenly spaced query rows of each block
    are read (every key of them): a cell is then the max, or mean, over those rows — a cheaper
    estimate for long inputs. Returns ``(layers, heads, cells_q, cells_k)`` float32."""
    if pool not in POOLS:
        raise InputError(f"unknown pooling {pool!r}; use max or mean")
    if rows_per_block is not None and rows_per_block < 1:
        raise InputError(f"rows_per_block must be at least 1, not {rows_per_block}")
    name = trace.stack_name(stack)
    n_query, n_key = trace.source.shape(name)
    factor = pool_factor(n_query, n_key, size)
    heads = list(range(trace.num_heads(name)))
    layers = trace.captured_layers(name)
    rows = block_rows(n_query, factor, rows_per_block)
    height, width = -(-n_query // factor), -(-n_key // factor)
    out = np.zeros((len(layers), len(heads), height, width), dtype=np.float32)
    elements = kernel.chunk_elements(source_device(trace.source))
    step = max(1, elements // max(1, len(heads) * n_key))  # a bounded (heads, rows, n_key) working set
    for done, layer in enumerate(layers):
        report(progress, done, len(layers), "whole maps")
        cells: torch.Tensor | None = None
        for begin in range(0, len(rows), step):
            chunk = rows[begin : begin + step]
            weights = trace.source.rows_tensor(name, layer, heads, chunk)  # (heads, rows, n_key) on its device
            pooled = _pool_keys(weights.to(torch.float32), factor, n_key, pool)  # (heads, rows, width)
            if cells is None:
                cells = torch.zeros((len(heads), height, width), dtype=torch.float32, device=pooled.device)
            where = torch.as_tensor(chunk // factor, device=pooled.device)
            if pool == "max":  # weights are >= 0: a zero start is the identity of the maximum
                cells.scatter_reduce_(1, where.view(1, -1, 1).expand_as(pooled), pooled, "amax", include_self=True)
            else:
                cells.index_add_(1, where, pooled)
        assert cells is not None
        out[done] = to_numpy(cells)
    if pool == "mean":  # the sum over the rows read and the block's keys, over their count
        read = np.bincount(rows // factor, minlength=height).astype(np.float64)  # rows read per block
        counts = np.outer(read, _cell_counts(n_key, factor))  # (cells_q, cells_k)
        out = (out / counts[None, None]).astype(np.float32)
    report(progress, len(layers), len(layers), "whole maps")
    sampled = rows_per_block if len(rows) < n_query else None
    return PooledMaps(out, layers, factor, pool, (n_query, n_key), sampled)


@dataclass(frozen=True)
class LayerVectors:
    """One layer's post-rotary queries and keys, the vectors whose scaled dot product is the score."""

    queries: np.ndarray  # (heads, query, head_dim) float32
    keys: np.ndarray  # (heads, key, head_dim) float32: each query head's key head (grouped KV repeated)
    scaling: float  # score = scaling · q · k
    query_positions: np.ndarray  # (query,) int64
    exact: bool  # False when soft-capping or a position bias also shape the scores


def layer_vectors(trace: Trace, layer: int, heads: list[int], *, stack: str | None = None) -> LayerVectors:
    """The queries and keys of ``heads`` of ``layer`` from a ``qk`` trace (eager traces keep none)."""
    name = trace.stack_name(stack)
    index = trace.resolve_layer(layer, name)
    source = trace.source
    if not isinstance(source, QKSource):
        raise InputError("this trace kept attention maps, not queries and keys: capture it with backend='qk'")
    record = source.records[(name, index)]
    n_heads, n_kv = int(record.query.shape[0]), int(record.key.shape[0])
    head_ids = torch.as_tensor(heads, dtype=torch.long, device=record.query.device)
    queries = record.query[head_ids].to(torch.float32)
    keys = record.key[(head_ids // (n_heads // n_kv)).to(record.key.device)].to(torch.float32)
    return LayerVectors(
        queries=to_numpy(queries),
        keys=to_numpy(keys),
        scaling=float(record.scaling),
        query_positions=np.asarray(record.query_positions, dtype=np.int64),
        exact=record.softcap is None and record.bias_id is None,
    )
