"""Attention sources: where a ``Trace`` gets attention weights from, lazily.

- :class:`FullSource` holds the tensors of an eager forward with ``output_attentions=True``
  (exact, memory O(layers x heads x N^2)), as numpy arrays.
- :class:`QKSource` holds post-rotary queries and keys (the stash: on the model's device, in the
  model's dtype) and recomputes rows on demand with the torch kernel (:mod:`.kernel`), in query
  chunks, batched over heads, with the model's scaling, grouped KV heads, causal/sliding-window
  mask, soft-cap and additive position bias (memory O(layers x N x (Hq + Hkv) x d)).

Both answer ``rows(stack, layer, heads, query_rows, reduce) -> (heads, rows, key)`` (or
``(rows, key)`` when ``reduce`` is ``mean``/``max`` over the heads) and ``block(stack, layer,
heads, rows, cols, reduce, pool) -> (rows, cols)`` as float32 numpy arrays: numpy only at this edge.
``QKSource`` computes a block without the rest of its rows: each row's softmax normaliser
(log-sum-exp over all its keys) is computed once per (layer, head) in row chunks and cached (N
floats on the device).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from attnscope.capture import kernel
from attnscope.capture.reads import Reduce
from attnscope.capture.records import LayerRecord, as_tensor, to_numpy


def _combine(values: np.ndarray, reduce: Reduce) -> np.ndarray:
    """(heads, ...) -> (...) mean or max over the heads; the first head when there is no reduction."""
    if reduce == "mean":
        return values.mean(axis=0, dtype=np.float32)
    if reduce == "max":
        return values.max(axis=0)
    return values[0]


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

    def rows(
        self, stack: str, layer: int, heads: list[int], query_rows: np.ndarray, reduce: Reduce = None
    ) -> np.ndarray:
        array = self.maps[stack][layer]  # (heads, query, key)
        values = np.ascontiguousarray(array[np.asarray(heads)[:, None], np.asarray(query_rows)], dtype=np.float32)
        return _combine(values, reduce) if reduce else values

    def rows_tensor(
        self, stack: str, layer: int, heads: list[int], query_rows: np.ndarray, reduce: Reduce = None
    ) -> torch.Tensor:
        return torch.from_numpy(self.rows(stack, layer, heads, query_rows, reduce))

    def block(
        self, stack: str, layer: int, heads: list[int], rows: slice, cols: slice, reduce: Reduce = None, pool: int = 1
    ) -> np.ndarray:
        values = np.asarray(self.maps[stack][layer][np.asarray(heads), rows, cols], dtype=np.float32)
        return to_numpy(max_pool(torch.from_numpy(np.ascontiguousarray(_combine(values, reduce))), pool))

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
    """Queries and keys per (stack, layer) — the stash, on the device the forward ran on; attention
    weights recomputed on demand by :mod:`.kernel`, batched over heads, on that device."""

    records: dict[tuple[str, int], LayerRecord]
    masks: list[torch.Tensor]  # (query, key) bool, only for masks no rule explains
    biases: list[torch.Tensor]  # (heads, query, key) float32 additive position bias
    name: str = "qk"
    # (stack, layer) -> (heads, query) float32 log-sum-exp of each row; NaN where not computed yet
    _lse: dict[tuple[str, int], torch.Tensor] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.masks = [as_tensor(m).to(torch.bool) for m in self.masks]
        self.biases = [as_tensor(b) for b in self.biases]

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

    @property
    def stash_bytes(self) -> int:
        return sum(record.stash_bytes for record in self.records.values())

    def _scores(
        self, record: LayerRecord, heads: list[int], rows: torch.Tensor, first: int, last: int, keys: kernel.Keys
    ) -> torch.Tensor:
        return kernel.scores(record, heads, rows, first, last, masks=self.masks, biases=self.biases, keys=keys)

    def _softmax_rows(
        self, record: LayerRecord, heads: list[int], chunk: torch.Tensor, keys: kernel.Keys
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(heads, rows, key) weights of whole rows and their (heads, rows) log-sum-exp; under a causal
        rule only the keys up to the chunk's last position are computed (the rest are 0). ``keys``:
        the record's keys in the work dtype (:func:`kernel.work_keys`), converted once per read."""
        n_key = int(record.key.shape[1])
        end = kernel.causal_end(record, chunk)
        weights, lse = kernel.softmax(self._scores(record, heads, chunk, 0, end, keys))
        if end < n_key:
            weights = torch.nn.functional.pad(weights, (0, n_key - end))
        return weights, lse

    def _lse_cache(self, stack: str, layer: int) -> torch.Tensor:
        found = self._lse.get((stack, layer))
        if found is None:
            record = self.records[(stack, layer)]
            shape = (record.query.shape[0], record.query.shape[1])
            with torch.inference_mode(False):  # a normal tensor: writable in and out of inference mode
                found = self._lse[(stack, layer)] = torch.full(shape, float("nan"), device=record.device)
        return found

    def rows_tensor(
        self, stack: str, layer: int, heads: list[int], query_rows: np.ndarray, reduce: Reduce = None
    ) -> torch.Tensor:
        """(heads, rows, key) float32 weights on the stash's device, or (rows, key) for ``reduce``
        ``mean``/``max`` over the heads (combined chunk by chunk: never every head's rows at once)."""
        record = self.records[(stack, layer)]
        device = record.device
        n_key = int(record.key.shape[1])
        head_ids = kernel.index(heads, device)
        rows = kernel.index(query_rows, device)
        shape = (len(rows), n_key) if reduce else (len(heads), len(rows), n_key)
        out = torch.empty(shape, dtype=torch.float32, device=device)
        cache = self._lse_cache(stack, layer)
        keys = kernel.work_keys(record)
        step = max(
            1, kernel.chunk_elements(device) // max(1, n_key * len(heads))
        )  # a bounded (heads, rows, key) working set
        for begin in range(0, len(rows), step):
            chunk = rows[begin : begin + step]
            weights, lse = self._softmax_rows(record, heads, chunk, keys)
            cache[head_ids[:, None], chunk[None, :]] = lse.to(torch.float32)  # for free: later blocks reuse it
            if reduce == "mean":
                out[begin : begin + len(chunk)] = weights.mean(dim=0)
            elif reduce == "max":
                out[begin : begin + len(chunk)] = weights.amax(dim=0)
            else:
                out[:, begin : begin + len(chunk)] = weights
        return out

    def rows(
        self, stack: str, layer: int, heads: list[int], query_rows: np.ndarray, reduce: Reduce = None
    ) -> np.ndarray:
        return to_numpy(self.rows_tensor(stack, layer, heads, query_rows, reduce))

    def row_lse(self, stack: str, layer: int, heads: list[int]) -> torch.Tensor:
        """(heads, query) float32 log-sum-exp of each row's scores over its allowed keys (−inf: no key),
        on the stash's device; computed in row chunks for the rows not known yet, then cached."""
        record = self.records[(stack, layer)]
        cache = self._lse_cache(stack, layer)
        head_ids = kernel.index(heads, record.device)
        missing = torch.nonzero(torch.isnan(cache[head_ids]).any(dim=0)).flatten()
        step = max(1, kernel.chunk_elements(record.device) // 4 // max(1, int(record.key.shape[1]) * len(heads)))
        keys = kernel.work_keys(record) if len(missing) else None
        for begin in range(0, len(missing), step):
            chunk = missing[begin : begin + step]
            assert keys is not None
            found = self._softmax_rows(record, heads, chunk, keys)[1]
            cache[head_ids[:, None], chunk[None, :]] = found.to(torch.float32)
        return cache[head_ids]

    def block(
        self, stack: str, layer: int, heads: list[int], rows: slice, cols: slice, reduce: Reduce = None, pool: int = 1
    ) -> np.ndarray:
        """(rows, cols) float32 weights of one head (``reduce`` None) or the mean/max of ``heads``,
        max-pooled over ``pool`` × ``pool`` cells (edges padded with 0) before it leaves the device."""
        record = self.records[(stack, layer)]
        n_query, n_key = int(record.query.shape[1]), int(record.key.shape[1])
        r0, r1 = rows.indices(n_query)[:2]
        c0, c1 = cols.indices(n_key)[:2]
        height, width = max(0, r1 - r0), max(0, c1 - c0)
        query_rows = kernel.index(range(r0, r1), record.device)
        if not height or not width or c0 >= kernel.causal_end(record, query_rows):
            return np.zeros((-(-height // pool), -(-width // pool)), dtype=np.float32)  # nothing to compute
        # whole rows: one softmax pass gives the weights and, for free, the rows' log-sum-exp;
        # a part of the rows: its own cells, normalised by the (cached) log-sum-exp of the whole rows
        whole = c0 == 0 and c1 == n_key
        lse = None if whole else self.row_lse(stack, layer, heads)
        cache, head_ids = self._lse_cache(stack, layer), kernel.index(heads, record.device)
        keys = kernel.work_keys(record, 0 if whole else c0, c1)
        out = torch.empty((height, width), dtype=torch.float32, device=record.device)
        step = max(1, kernel.chunk_elements(record.device) // max(1, width * len(heads)))
        for begin in range(0, height, step):
            chunk = query_rows[begin : begin + step]
            if lse is None:
                values, found = self._softmax_rows(record, heads, chunk, keys)
                cache[head_ids[:, None], chunk[None, :]] = found.to(torch.float32)
            else:
                scores = self._scores(record, heads, chunk, c0, c1, keys)
                values = kernel.weights_from_lse(scores, lse[:, chunk])
            out[begin : begin + len(chunk)] = (
                values.mean(dim=0) if reduce == "mean" else values.amax(dim=0) if reduce == "max" else values[0]
            )
        return to_numpy(max_pool(out, pool))

    def arrays(self) -> dict[str, np.ndarray]:
        arrays: dict[str, np.ndarray] = {}
        for (stack, layer), record in self.records.items():
            prefix = f"qk/{stack}/{layer}"
            arrays[f"{prefix}/query"] = to_numpy(record.query)
            arrays[f"{prefix}/key"] = to_numpy(record.key)
            arrays[f"{prefix}/query_positions"] = record.query_positions
        for index, mask in enumerate(self.masks):
            arrays[f"qk_mask/{index}"] = to_numpy(mask).astype(np.uint8)
        for index, bias in enumerate(self.biases):
            arrays[f"qk_bias/{index}"] = to_numpy(bias)
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
                query=as_tensor(arrays[f"{prefix}/query"]),
                key=as_tensor(arrays[f"{prefix}/key"]),
                query_positions=arrays[f"{prefix}/query_positions"],
                scaling=float(item["scaling"]),
                softcap=item["softcap"],
                causal=bool(item["causal"]),
                window=item["window"],
                mask_id=item["mask_id"],
                bias_id=item["bias_id"],
            )
        masks = [as_tensor(arrays[f"qk_mask/{i}"].astype(bool)) for i in range(_count(arrays, "qk_mask/"))]
        biases = [as_tensor(arrays[f"qk_bias/{i}"]) for i in range(_count(arrays, "qk_bias/"))]
        return cls(records=records, masks=masks, biases=biases)


def source_device(source: Any) -> torch.device:
    """Where a source computes its reads: the ``qk`` stash's device, else the CPU (numpy maps)."""
    if isinstance(source, QKSource) and source.records:
        return next(iter(source.records.values())).device
    return torch.device("cpu")


def max_pool(values: torch.Tensor, factor: int) -> torch.Tensor:
    """(ceil(r/f), ceil(c/f)) maxima of f x f blocks (edges padded with 0: weights are ≥ 0)."""
    if factor == 1:
        return values
    rows, cols = values.shape
    height, width = -(-rows // factor), -(-cols // factor)
    padded = torch.nn.functional.pad(values, (0, width * factor - cols, 0, height * factor - rows))
    return padded.reshape(height, factor, width, factor).amax(dim=(1, 3))


def _count(arrays: dict[str, np.ndarray], prefix: str) -> int:
    return sum(1 for key in arrays if key.startswith(prefix))
