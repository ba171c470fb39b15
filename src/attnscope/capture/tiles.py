"""Blocks and a tile pyramid of one attention map, computed lazily with bounded memory.

A map of N query × N key tokens is cut into ``TILE`` × ``TILE`` tiles. Level 0 tiles hold the
weights themselves; a tile of level ``l`` covers ``TILE·2^l`` tokens on each side and every pixel
is the **maximum** over its ``2^l × 2^l`` block (so a sharp head stays visible in the overview;
a mean would fade it). The top level is the first whose single tile covers the whole map.

Nothing here allocates N × N: a block is computed from queries/keys in row chunks with the
softmax normaliser of each row (its log-sum-exp), which :class:`attnscope.capture.sources.QKSource`
computes once per (layer, head) and caches (N floats). Tiles are kept in a :class:`TileCache`, an
LRU bounded in bytes.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any

import numpy as np
import torch

from attnscope.capture import kernel
from attnscope.capture.reads import Reduce
from attnscope.capture.selection import HeadSelector, parse_head
from attnscope.capture.sources import max_pool, source_device
from attnscope.capture.trace import Trace
from attnscope.errors import OutOfRangeError

TILE = 256
DEFAULT_CACHE_BYTES = 256 * 1024 * 1024
# Rows of a level > 0 tile computed at once (float32 block of ROW_CHUNK x TILE·2^l).
BLOCK_ELEMENTS = 1024 * 1024


def levels_for(n: int, tile: int = TILE) -> int:
    """Number of pyramid levels for an ``n``-token side (level ``levels - 1`` is one tile)."""
    return max(1, math.ceil(math.log2(max(n, 1) / tile)) + 1) if n > tile else 1


class TileCache:
    """A thread-safe LRU of numpy arrays bounded by their total bytes."""

    def __init__(self, max_bytes: int = DEFAULT_CACHE_BYTES) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self.hits = 0
        self.misses = 0
        self._items: OrderedDict[Hashable, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> np.ndarray | None:
        with self._lock:
            value = self._items.get(key)
            if value is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return value

    def put(self, key: Hashable, value: np.ndarray) -> None:
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self.bytes -= old.nbytes
            self._items[key] = value
            self.bytes += value.nbytes
            while self.bytes > self.max_bytes and len(self._items) > 1:
                _, dropped = self._items.popitem(last=False)
                self.bytes -= dropped.nbytes

    def __len__(self) -> int:
        return len(self._items)

    def stats(self) -> dict[str, Any]:
        return {
            "items": len(self._items),
            "bytes": self.bytes,
            "max_bytes": self.max_bytes,
            "hits": self.hits,
            "misses": self.misses,
        }


def _heads(trace: Trace, head: HeadSelector, stack: str) -> tuple[list[int], Reduce]:
    """(heads, how to combine them): one head, a list (mean), or all heads combined by mean or max."""
    selector = parse_head(head)
    if selector is None:
        raise OutOfRangeError("a tile shows one map: choose a head, a list of heads, 'mean' or 'max'")
    heads = trace.resolve_heads(selector, stack)
    if isinstance(selector, int):
        return heads, None
    return heads, "max" if selector == "max" else "mean"


def block(
    trace: Trace, layer: int, head: HeadSelector, rows: slice, cols: slice, *, stack: str | None = None, pool: int = 1
) -> np.ndarray:
    """(rows, cols) float32 weights of one head, or the mean/max of all heads, for a rectangle; with
    ``pool`` > 1 the maxima of its ``pool`` × ``pool`` blocks (computed where the stash is)."""
    name = trace.stack_name(stack)
    index = trace.resolve_layer(layer, name)
    n_query, n_key = trace.source.shape(name)
    rows = slice(*rows.indices(n_query)[:2])
    cols = slice(*cols.indices(n_key)[:2])
    heads, combine = _heads(trace, head, name)
    return trace.source.block(name, index, heads, rows, cols, combine, pool)


class TilePyramid:
    """Tiles of one (stack, layer, head) map of a trace; see the module docstring."""

    def __init__(
        self,
        trace: Trace,
        layer: int,
        head: HeadSelector,
        *,
        stack: str | None = None,
        cache: TileCache | None = None,
        key: Hashable = None,
        tile: int = TILE,
    ) -> None:
        self.trace = trace
        self.stack = trace.stack_name(stack)
        self.layer = trace.resolve_layer(layer, self.stack)
        _heads(trace, head, self.stack)  # validates
        self.head = head
        self.tile = tile
        self.cache = cache if cache is not None else TileCache()
        self.key = (key if key is not None else id(trace), self.stack, self.layer, str(head))
        self.n_query, self.n_key = trace.source.shape(self.stack)
        self.levels = max(levels_for(self.n_query, tile), levels_for(self.n_key, tile))
        self.device = source_device(trace.source)

    def grid(self, level: int) -> tuple[int, int]:
        """(tile rows, tile columns) at ``level``."""
        span = self.tile << level
        return -(-self.n_query // span), -(-self.n_key // span)

    def describe(self) -> dict[str, Any]:
        return {
            "tile": self.tile,
            "levels": self.levels,
            "shape": [self.n_query, self.n_key],
            "grids": [list(self.grid(level)) for level in range(self.levels)],
        }

    def get(self, level: int, ty: int, tx: int) -> np.ndarray:
        """(≤tile, ≤tile) float32 tile; edge tiles are cut to the map (not padded)."""
        if not 0 <= level < self.levels:
            raise OutOfRangeError(f"tile level {level} out of range (0..{self.levels - 1})")
        rows, cols = self.grid(level)
        if not (0 <= ty < rows and 0 <= tx < cols):
            raise OutOfRangeError(f"tile ({ty}, {tx}) out of range at level {level}: {rows} x {cols} tiles")
        cache_key = (*self.key, level, ty, tx)
        found = self.cache.get(cache_key)
        if found is not None:
            return found
        value = self._compute(level, ty, tx)
        self.cache.put(cache_key, value)
        return value

    def _compute(self, level: int, ty: int, tx: int) -> np.ndarray:
        factor = 1 << level
        span = self.tile * factor
        r0, c0 = ty * span, tx * span
        r1, c1 = min(self.n_query, r0 + span), min(self.n_key, c0 + span)
        height, width = -(-(r1 - r0) // factor), -(-(c1 - c0) // factor)
        if level == 0:
            return np.ascontiguousarray(
                block(self.trace, self.layer, self.head, slice(r0, r1), slice(c0, c1), stack=self.stack)
            )
        below_rows, below_cols = self.grid(level - 1)
        children = [
            (2 * ty + dy, 2 * tx + dx)
            for dy in (0, 1)
            for dx in (0, 1)
            if 2 * ty + dy < below_rows and 2 * tx + dx < below_cols
        ]
        cached = all(self.cache.get((*self.key, level - 1, y, x)) is not None for y, x in children)
        if cached:  # from the four tiles of the level below: cheap
            out = np.zeros((height, width), dtype=np.float32)
            below_rows, below_cols = self.grid(level - 1)
            for dy in (0, 1):
                for dx in (0, 1):
                    y, x = 2 * ty + dy, 2 * tx + dx
                    if y >= below_rows or x >= below_cols:
                        continue
                    child = self.get(level - 1, y, x)
                    pooled = max_pool(torch.from_numpy(child), 2).numpy()
                    oy, ox = dy * (self.tile // 2), dx * (self.tile // 2)
                    out[oy : oy + pooled.shape[0], ox : ox + pooled.shape[1]] = pooled
            return out
        out = np.zeros((height, width), dtype=np.float32)
        elements = BLOCK_ELEMENTS if self.device.type == "cpu" else kernel.chunk_elements(self.device)
        step = max(factor, (elements // max(1, c1 - c0)) // factor * factor)
        for begin in range(r0, r1, step):
            end = min(r1, begin + step)
            pooled = block(
                self.trace, self.layer, self.head, slice(begin, end), slice(c0, c1), stack=self.stack, pool=factor
            )
            offset = (begin - r0) // factor
            out[offset : offset + pooled.shape[0]] = pooled
        return out
