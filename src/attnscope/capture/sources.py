"""Attention sources: where a ``Trace`` gets attention weights from, lazily.

- :class:`FullSource` holds the tensors of an eager forward with ``output_attentions=True``
  (exact, memory O(layers x heads x N^2)).
- :class:`QKSource` holds post-rotary queries and keys and recomputes rows on demand, in query
  chunks, with the model's scaling, grouped KV heads, causal/sliding-window mask, soft-cap and
  additive position bias (memory O(layers x N x (Hq + Hkv) x d)).

Both answer ``rows(stack, layer, heads, query_rows) -> (heads, rows, key)`` and
``block(stack, layer, head, rows, cols) -> (rows, cols)`` float32 arrays. ``QKSource`` computes a
block without the rest of its rows: each row's softmax normaliser (log-sum-exp over all its keys)
is computed once per (layer, head) in row chunks and cached (N floats). Both are pure numpy, so a
loaded trace needs neither torch nor the model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from attnscope.capture import kernel
from attnscope.capture.records import LayerRecord

# How a capture records attention: the eager maps, queries and keys, or the choice by length.
BACKENDS = ("auto", "full", "qk")
# Upper bound on the float32 scores held at once while recomputing rows (elements).
CHUNK_ELEMENTS = 8 * 1024 * 1024


class AttentionSource(Protocol):
    name: str

    def stacks(self) -> list[str]: ...

    def layers(self, stack: str) -> list[int]: ...

    def num_heads(self, stack: str) -> int: ...

    def shape(self, stack: str) -> tuple[int, int]: ...

    def rows(self, stack: str, layer: int, heads: list[int], query_rows: np.ndarray) -> np.ndarray: ...

    def block(self, stack: str, layer: int, head: int, rows: slice, cols: slice) -> np.ndarray: ...

    def arrays(self) -> dict[str, np.ndarray]: ...

    def meta(self) -> dict[str, Any]: ...


@dataclass
class FullSource:
    """Attention tensors from transformers' eager path: ``maps[stack][layer]`` is (heads, query, key)."""

    maps: dict[str, dict[int, np.ndarray]]
    name: str = "full"

    def stacks(self) -> list[str]:
        return list(self.maps)

    def layers(self, stack: str) -> list[int]:
        return sorted(self.maps[stack])

    def num_heads(self, stack: str) -> int:
        return int(next(iter(self.maps[stack].values())).shape[0])

    def shape(self, stack: str) -> tuple[int, int]:
        array = next(iter(self.maps[stack].values()))
        return int(array.shape[1]), int(array.shape[2])

    def rows(self, stack: str, layer: int, heads: list[int], query_rows: np.ndarray) -> np.ndarray:
        array = self.maps[stack][layer]  # (heads, query, key)
        return np.ascontiguousarray(array[np.asarray(heads)][:, query_rows], dtype=np.float32)

    def block(self, stack: str, layer: int, head: int, rows: slice, cols: slice) -> np.ndarray:
        return np.asarray(self.maps[stack][layer][head, rows, cols], dtype=np.float32)

    def arrays(self) -> dict[str, np.ndarray]:
        return {f"full/{stack}/{layer}": a for stack, by_layer in self.maps.items() for layer, a in by_layer.items()}

    def meta(self) -> dict[str, Any]:
        return {"name": self.name}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> FullSource:
        maps: dict[str, dict[int, np.ndarray]] = {}
        for key, value in arrays.items():
            if key.startswith("full/"):
                _, stack, layer = key.split("/")
                maps.setdefault(stack, {})[int(layer)] = value
        return cls(maps=maps)


@dataclass
class QKSource:
    """Queries and keys per (stack, layer); attention weights recomputed on demand by :mod:`.kernel`."""

    records: dict[tuple[str, int], LayerRecord]
    masks: list[np.ndarray]  # (query, key) bool, only for masks no rule explains
    biases: list[np.ndarray]  # (heads, query, key) float32 additive position bias
    name: str = "qk"
    _lse: dict[tuple[str, int, int], np.ndarray] = field(default_factory=dict, repr=False, compare=False)

    def stacks(self) -> list[str]:
        return list(dict.fromkeys(stack for stack, _ in self.records))

    def layers(self, stack: str) -> list[int]:
        return sorted(layer for s, layer in self.records if s == stack)

    def _any(self, stack: str) -> LayerRecord:
        return self.records[(stack, self.layers(stack)[0])]

    def num_heads(self, stack: str) -> int:
        return int(self._any(stack).query.shape[0])

    def shape(self, stack: str) -> tuple[int, int]:
        record = self._any(stack)
        return int(record.query.shape[1]), int(record.key.shape[1])

    def _scores(self, record: LayerRecord, heads: np.ndarray, rows: np.ndarray, cols: slice) -> np.ndarray:
        return kernel.scores(record, heads, rows, cols, masks=self.masks, biases=self.biases)

    def _softmax_rows(self, record: LayerRecord, heads: np.ndarray, chunk: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(heads, rows, key) weights of whole rows and their (heads, rows) log-sum-exp; under a causal
        rule only the keys up to the chunk's last position are computed (the rest are 0)."""
        n_key = record.key.shape[1]
        end = kernel.causal_end(record, chunk)
        weights, lse = kernel.softmax(self._scores(record, heads, chunk, slice(0, end)))
        if end == n_key:
            return weights, lse
        whole = np.zeros((len(heads), len(chunk), n_key), dtype=np.float32)
        whole[..., :end] = weights
        return whole, lse

    def rows(self, stack: str, layer: int, heads: list[int], query_rows: np.ndarray) -> np.ndarray:
        record = self.records[(stack, layer)]
        n_key = record.key.shape[1]
        head_ids = np.asarray(heads, dtype=np.int64)
        out = np.empty((len(heads), len(query_rows), n_key), dtype=np.float32)
        step = max(1, CHUNK_ELEMENTS // max(1, n_key * len(heads)))  # a bounded (heads, rows, key) working set
        for begin in range(0, len(query_rows), step):
            chunk = query_rows[begin : begin + step]
            out[:, begin : begin + len(chunk)] = self._softmax_rows(record, head_ids, chunk)[0]
        return out

    def _lse_slot(self, stack: str, layer: int, head: int) -> np.ndarray:
        """The (query,) log-sum-exp cache of one head: NaN where a row has not been computed yet."""
        cache_key = (stack, layer, head)
        found = self._lse.get(cache_key)
        if found is None:
            n_query = self.records[(stack, layer)].query.shape[1]
            found = self._lse[cache_key] = np.full(n_query, np.nan, dtype=np.float32)
        return found

    def row_lse(self, stack: str, layer: int, head: int) -> np.ndarray:
        """(query,) float32 log-sum-exp of each row's scores over its allowed keys (−inf: no key);
        computed in row chunks once per (stack, layer, head), then cached."""
        lse = self._lse_slot(stack, layer, head)
        missing = np.flatnonzero(np.isnan(lse))  # rows a whole-row block has not filled in yet
        if not len(missing):
            return lse
        record = self.records[(stack, layer)]
        step = max(1, CHUNK_ELEMENTS // 4 // max(1, record.key.shape[1]))  # a few (rows, key) temporaries
        for begin in range(0, len(missing), step):
            chunk = missing[begin : begin + step]
            lse[chunk] = self._softmax_rows(record, np.array([head]), chunk)[1][0]
        return lse

    def block(self, stack: str, layer: int, head: int, rows: slice, cols: slice) -> np.ndarray:
        record = self.records[(stack, layer)]
        n_query, n_key = record.query.shape[1], record.key.shape[1]
        r0, r1 = rows.indices(n_query)[:2]
        c0, c1 = cols.indices(n_key)[:2]
        out = np.zeros((max(0, r1 - r0), max(0, c1 - c0)), dtype=np.float32)
        if out.size == 0:
            return out
        query_rows = np.arange(r0, r1)
        if c0 >= kernel.causal_end(record, query_rows):
            return out  # above the diagonal of a causal map: nothing to compute
        head_ids = np.array([head])
        known = self._lse_slot(stack, layer, head)
        if c0 == 0 and c1 == n_key and np.isnan(known[r0:r1]).any():
            # whole rows: one pass gives the weights and, for free, the rows' log-sum-exp
            step = max(1, CHUNK_ELEMENTS // 4 // max(1, n_key))
            for begin in range(0, len(query_rows), step):
                chunk = query_rows[begin : begin + step]
                weights, lse = self._softmax_rows(record, head_ids, chunk)
                out[begin : begin + len(chunk)] = weights[0]
                known[chunk] = lse[0]
            return out
        lse = self.row_lse(stack, layer, head)
        step = max(1, CHUNK_ELEMENTS // max(1, c1 - c0))
        for begin in range(0, len(query_rows), step):
            chunk = query_rows[begin : begin + step]
            values = self._scores(record, head_ids, chunk, slice(c0, c1))[0]
            out[begin : begin + len(chunk)] = kernel.weights_from_lse(values, lse[chunk])
        return out

    def arrays(self) -> dict[str, np.ndarray]:
        arrays: dict[str, np.ndarray] = {}
        for (stack, layer), record in self.records.items():
            prefix = f"qk/{stack}/{layer}"
            arrays[f"{prefix}/query"] = record.query
            arrays[f"{prefix}/key"] = record.key
            arrays[f"{prefix}/query_positions"] = record.query_positions
        for index, mask in enumerate(self.masks):
            arrays[f"qk_mask/{index}"] = mask.astype(np.uint8)
        for index, bias in enumerate(self.biases):
            arrays[f"qk_bias/{index}"] = bias
        return arrays

    def meta(self) -> dict[str, Any]:
        layers = [
            {
                "stack": stack,
                "layer": layer,
                "scaling": r.scaling,
                "softcap": r.softcap,
                "causal": r.causal,
                "window": r.window,
                "mask_id": r.mask_id,
                "bias_id": r.bias_id,
            }
            for (stack, layer), r in self.records.items()
        ]
        return {"name": self.name, "layers": layers}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> QKSource:
        records: dict[tuple[str, int], LayerRecord] = {}
        for item in meta["layers"]:
            prefix = f"qk/{item['stack']}/{item['layer']}"
            records[(item["stack"], int(item["layer"]))] = LayerRecord(
                query=arrays[f"{prefix}/query"],
                key=arrays[f"{prefix}/key"],
                query_positions=arrays[f"{prefix}/query_positions"],
                scaling=float(item["scaling"]),
                softcap=item["softcap"],
                causal=bool(item["causal"]),
                window=item["window"],
                mask_id=item["mask_id"],
                bias_id=item["bias_id"],
            )
        masks = [arrays[f"qk_mask/{i}"].astype(bool) for i in range(_count(arrays, "qk_mask/"))]
        biases = [arrays[f"qk_bias/{i}"] for i in range(_count(arrays, "qk_bias/"))]
        return cls(records=records, masks=masks, biases=biases)


def _count(arrays: dict[str, np.ndarray], prefix: str) -> int:
    return sum(1 for key in arrays if key.startswith(prefix))
