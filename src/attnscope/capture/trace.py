"""``Trace``: the result of one capture — tokens, predictions and lazily computed attention."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from attnscope.capture.predictions import Candidate, Predictions
from attnscope.capture.sources import CHUNK_ELEMENTS, AttentionSource
from attnscope.capture.tokens import Part, Token
from attnscope.errors import OutOfRangeError

HeadSelector = int | str | Sequence[int] | None
RowSelector = int | slice | Sequence[int] | np.ndarray | None


@dataclass
class Trace:
    """One forward pass over a text, ready to be looked at.

    Attention is never materialised for the whole model: :meth:`attention` asks the source for the
    (layer, heads, rows) requested. Stacks: ``decoder`` for causal LMs, ``encoder`` for encoders;
    encoder-decoders have ``encoder``, ``decoder`` and ``cross`` (decoder queries, encoder keys).
    """

    text: str
    tokens: list[Token]  # the input (encoder input for seq2seq)
    model: dict[str, Any]  # LoadedModel.info()
    source: AttentionSource
    backend: str  # "full" | "qk"
    predictions: Predictions | None
    provenance: dict[str, Any]
    parts: list[Part] = field(default_factory=list)
    target_tokens: list[Token] | None = None  # seq2seq: the decoder input (start token + target)
    target_text: str | None = None

    # --- structure -------------------------------------------------------------------------
    @property
    def kind(self) -> str:
        return str(self.model["kind"])

    @property
    def default_stack(self) -> str:
        return {"causal": "decoder", "masked": "encoder", "seq2seq": "cross"}[self.kind]

    def stacks(self) -> list[str]:
        return self.source.stacks()

    def _stack(self, stack: str | None) -> str:
        name = stack or self.default_stack
        if name not in self.source.stacks():
            raise OutOfRangeError(f"no attention stack {name!r} in this trace; stacks: {self.source.stacks()}")
        return name

    def num_layers(self, stack: str | None = None) -> int:
        name = self._stack(stack)
        declared = self.model.get("stacks", {}).get(name, {}).get("layers")
        return int(declared) if declared else max(self.source.layers(name)) + 1

    def captured_layers(self, stack: str | None = None) -> list[int]:
        return self.source.layers(self._stack(stack))

    def num_heads(self, stack: str | None = None) -> int:
        return self.source.num_heads(self._stack(stack))

    def query_tokens(self, stack: str | None = None) -> list[Token]:
        name = self._stack(stack)
        return self.tokens if name == "encoder" or self.target_tokens is None else self.target_tokens

    def key_tokens(self, stack: str | None = None) -> list[Token]:
        name = self._stack(stack)
        return self.tokens if name in ("encoder", "cross") or self.target_tokens is None else self.target_tokens

    @property
    def token_ids(self) -> list[int]:
        return [t.id for t in self.tokens]

    # --- attention -------------------------------------------------------------------------
    def resolve_layer(self, layer: int, stack: str | None = None) -> int:
        name = self._stack(stack)
        count = self.num_layers(name)
        if isinstance(layer, bool) or not isinstance(layer, int | np.integer) or not -count <= layer < count:
            raise OutOfRangeError(f"layer {layer} out of range: {name} has {count} layers (0..{count - 1})")
        index = int(layer) % count
        if index not in self.source.layers(name):
            raise OutOfRangeError(f"layer {index} was not captured; captured layers: {self.source.layers(name)}")
        return index

    def resolve_heads(self, head: HeadSelector, stack: str | None = None) -> list[int]:
        count = self.num_heads(stack)
        if head is None or head in ("mean", "max"):
            return list(range(count))
        if isinstance(head, str):
            raise OutOfRangeError(f"head {head!r} out of range: {count} heads (0..{count - 1}, 'mean', 'max')")
        chosen = [head] if isinstance(head, int | np.integer) else list(head)
        if not chosen:
            raise OutOfRangeError("no heads selected")
        for item in chosen:
            if isinstance(item, bool) or not isinstance(item, int | np.integer) or not -count <= item < count:
                raise OutOfRangeError(f"head {item!r} out of range: {count} heads (0..{count - 1}, 'mean', 'max')")
        return [int(h) % count for h in chosen]

    def resolve_rows(self, rows: RowSelector, stack: str | None = None) -> np.ndarray:
        n_query = self.source.shape(self._stack(stack))[0]
        if rows is None:
            return np.arange(n_query)
        if isinstance(rows, slice):
            return np.arange(n_query)[rows]
        picked = np.atleast_1d(np.asarray(rows))
        if picked.dtype.kind not in "iu":
            raise OutOfRangeError(f"query rows must be integers, got {picked.dtype}")
        if picked.size and (picked.min() < -n_query or picked.max() >= n_query):
            raise OutOfRangeError(f"query position out of range: {n_query} query positions (0..{n_query - 1})")
        return picked.astype(np.int64) % max(n_query, 1)

    def attention(
        self, layer: int, head: HeadSelector = None, rows: RowSelector = None, *, stack: str | None = None
    ) -> np.ndarray:
        """Attention weights (raw softmax probabilities).

        Args:
            layer: layer index; negative counts from the end.
            head: an index, ``"mean"`` or ``"max"`` over heads, a list of indexes, or None for all.
            rows: query positions (int, slice or list; negative allowed); None for all.
            stack: ``decoder``/``encoder``/``cross``; default: the model's main stack.

        Returns:
            ``(query, key)`` for one head, mean or max; ``(heads, query, key)`` for None or a list.
        """
        name = self._stack(stack)
        index = self.resolve_layer(layer, name)
        heads = self.resolve_heads(head, name)
        query_rows = self.resolve_rows(rows, name)
        if head == "mean" or head == "max":
            n_key = self.source.shape(name)[1]
            combined = np.empty((len(query_rows), n_key), dtype=np.float32)
            step = max(1, CHUNK_ELEMENTS // max(1, len(heads) * n_key))  # bounded (heads, rows, key) working set
            for begin in range(0, len(query_rows), step):
                weights = self.source.rows(name, index, heads, query_rows[begin : begin + step])
                combined[begin : begin + step] = weights.mean(axis=0) if head == "mean" else weights.max(axis=0)
            return combined
        weights = self.source.rows(name, index, heads, query_rows)  # (heads, rows, key)
        return weights[0] if isinstance(head, int | np.integer) else weights

    # --- predictions -----------------------------------------------------------------------
    def top_predictions(self, position: int = -1, k: int | None = None) -> list[Candidate]:
        if self.predictions is None:
            raise OutOfRangeError(f"this {self.kind} model has no next-token head; there are no predictions")
        return self.predictions.top(position, k)

    # --- persistence -----------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write this trace to one ``.safetensors`` file (arrays) with JSON metadata in its header."""
        from attnscope.capture.trace_file import save_trace

        return save_trace(self, Path(path))

    @classmethod
    def load(cls, path: str | Path) -> Trace:
        """Read a trace written by :meth:`save`; raises ``TraceFormatError`` for anything else."""
        from attnscope.capture.trace_file import load_trace

        return load_trace(Path(path))
