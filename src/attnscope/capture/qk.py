"""Recording post-rotary queries and keys during a normal SDPA forward.

A custom attention function is registered with transformers' ``AttentionInterface`` (and the same
name with ``AttentionMaskInterface``, or sliding windows would be dropped silently). While a
:class:`QKRecorder` is active in the current context, every attention call hands it the query and
key tensors, the scaling, soft-cap, window and mask; the call then proceeds through the stock SDPA
function, so model outputs stay bit-identical to plain SDPA. Soft-capped layers (Gemma 2), which
stock SDPA rejects, go through a small eager path of our own.

Queries and keys are recorded as the tensors the model made — on its device, in its dtype, no copy —
unless the :class:`~attnscope.capture.stash.Stash` policy offloads them to the host. The mask is not
stored when a rule reproduces it: at record time the rule (causal, sliding window)
is checked against the model's actual mask on a sample of rows; only a mask the rule does not
explain is kept (shared masks are stored once).
"""

from __future__ import annotations

import contextlib
import contextvars
import re
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from attnscope.capture.growth import LayerGrowth
from attnscope.capture.kernel import index, rule_allowed
from attnscope.capture.records import LayerRecord
from attnscope.capture.stash import Stash
from attnscope.errors import UnsupportedError

QK_ATTENTION = "attnscope_qk"
_active: contextvars.ContextVar[QKRecorder | None] = contextvars.ContextVar("attnscope_qk", default=None)
_registered = False

_CROSS_NAMES = ("encoder_attn", "EncDecAttention", "crossattention", "cross_attn")


def ensure_registered() -> None:
    """Register the recording attention function (idempotent)."""
    global _registered
    if _registered:
        return
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, AttentionMaskInterface

    AttentionInterface.register(QK_ATTENTION, _recording_attention)
    AttentionMaskInterface.register(QK_ATTENTION, ALL_MASK_ATTENTION_FUNCTIONS["sdpa"])
    _registered = True


@contextlib.contextmanager
def attention_implementation(model: Any, name: str) -> Iterator[None]:
    """Temporarily switch ``model`` to another registered attention implementation."""
    previous = model.config._attn_implementation
    if previous == name:
        yield
        return
    model.set_attn_implementation(name)
    try:
        yield
    finally:
        model.set_attn_implementation(previous)


def classify_module(name: str, kind: str) -> tuple[str, int]:
    """(stack, layer) of an attention module from its qualified name, e.g.
    ``model.layers.3.self_attn`` -> ("decoder", 3); ``decoder.block.1.layer.1.EncDecAttention`` -> ("cross", 1)."""
    parts = name.split(".")
    numbers = [int(p) for p in parts if p.isdigit()]
    if not numbers:
        raise UnsupportedError(f"cannot tell the layer of attention module {name!r}")
    layer = numbers[0]
    if any(p in _CROSS_NAMES for p in parts):
        return "cross", layer
    if kind == "seq2seq":
        return ("encoder" if "encoder" in parts else "decoder"), layer
    return ("encoder" if kind == "masked" else "decoder"), layer


# id(attention module) -> (stack, layer) of each model seen, found once per model: walking the
# ~400 modules of an 8B model with a regex took a few ms of host time per capture (a GPU forward of
# 4k tokens is ~115 ms: that walk alone was a few percent of it)
_MODULE_MAPS: weakref.WeakKeyDictionary[Any, tuple[str, dict[int, tuple[str, int]]]] = weakref.WeakKeyDictionary()


def attention_modules(model: Any, kind: str) -> dict[int, tuple[str, int]]:
    """{id(module): (stack, layer)} of ``model``'s attention modules (cached per model object)."""
    found = _MODULE_MAPS.get(model)
    if found is not None and found[0] == kind:
        return found[1]
    names: dict[int, tuple[str, int]] = {}
    for name, module in model.named_modules():
        if any(ch.isdigit() for ch in name) and re.search(r"attn|attention", name, re.IGNORECASE):
            with contextlib.suppress(UnsupportedError):
                names[id(module)] = classify_module(name, kind)
    _MODULE_MAPS[model] = (kind, names)
    return names


@dataclass
class QKRecorder:
    module_names: dict[int, tuple[str, int]]  # id(module) -> (stack, layer)
    layers_wanted: set[int] | None = None
    records: dict[tuple[str, int], LayerRecord] = field(default_factory=dict)
    stash: Stash = field(default_factory=Stash)
    masks: list[torch.Tensor] = field(default_factory=list)  # (query, key) bool, True = attend
    biases: list[torch.Tensor] = field(default_factory=list)  # (heads, query, key) float32
    _mask_ids: dict[int, int] = field(default_factory=dict)
    _bias_ids: dict[int, int] = field(default_factory=dict)
    capacity: int = 0  # rows a generation may add per layer (its buffers are made for them)
    _growth: dict[tuple[str, int], LayerGrowth] = field(default_factory=dict)  # rows added by generation steps

    @classmethod
    def for_model(cls, model: Any, kind: str, layers: set[int] | None = None, stash: Stash | None = None) -> QKRecorder:
        return cls(module_names=attention_modules(model, kind), layers_wanted=layers, stash=stash or Stash())

    @contextlib.contextmanager
    def active(self) -> Iterator[QKRecorder]:
        token = _active.set(self)
        try:
            yield self
        finally:
            _active.reset(token)

    def record(
        self, module: Any, query: torch.Tensor, key: torch.Tensor, mask: torch.Tensor | None, kwargs: dict[str, Any]
    ) -> None:
        where = self.module_names.get(id(module))
        if where is None:
            raise UnsupportedError(f"attention module {type(module).__name__} is not mapped to a layer")
        stack, layer = where
        if self.layers_wanted is not None and layer not in self.layers_wanted:
            return
        q = query[0].detach()  # (heads, query, head_dim): the model's own tensor, its dtype and device
        k = key[0].detach()  # (kv_heads, key, head_dim)
        n_query, n_key = q.shape[1], k.shape[1]
        first = self.records.get((stack, layer))
        if first is not None and not self.capacity:
            raise UnsupportedError(
                f"attention module {stack} layer {layer} ran twice in one forward pass (shared layers?); "
                "use backend='full'"
            )
        if first is not None:  # a generation step over the KV cache: its last n_query keys are new
            growth = self._growth.get((stack, layer))
            if growth is None:
                growth = self._growth[(stack, layer)] = LayerGrowth(first, self.capacity, self.stash, q.device)
            growth.add(q, k[:, n_key - n_query :])
            return
        scaling = kwargs.get("scaling")
        if scaling is None:
            scaling = getattr(module, "scaling", None) or q.shape[-1] ** -0.5
        is_causal = kwargs.get("is_causal")
        if is_causal is None:
            is_causal = getattr(module, "is_causal", True)
        positions = np.arange(n_key - n_query, n_key, dtype=np.int64)
        kept_query, kept_key = self.stash.keep(q, k)  # one place for both
        record = LayerRecord(
            query=kept_query,
            key=kept_key,
            query_positions=positions,
            scaling=float(scaling),
            softcap=kwargs.get("softcap"),
            causal=bool(is_causal),
            window=kwargs.get("sliding_window"),
        )
        if mask is not None:
            allowed = _allowed_from_mask(mask)
            if not _rule_explains(record, allowed):
                record.mask_id = self._intern(self.masks, self._mask_ids, mask, allowed)
        bias = kwargs.get("position_bias")
        if bias is not None:
            record.bias_id = self._intern(self.biases, self._bias_ids, bias, bias[0].detach().to(torch.float32))
        self.records[(stack, layer)] = record

    def query_rows(self) -> set[int]:
        """The query rows each layer has recorded so far (a generation: one set member when all agree)."""
        return {
            growth.rows if (growth := self._growth.get(where)) is not None else record.query.shape[1]
            for where, record in self.records.items()
            if where[0] != "encoder"
        }

    def assemble(self) -> None:
        """Point each layer's record at every row its generation steps added (after
        :meth:`Stash.finish`). Keys come from the steps, not from the cache, so layers whose
        sliding-window cache evicted old keys still have them all."""
        for where in list(self._growth):
            self._growth.pop(where).finish(self.records[where], where)

    @staticmethod
    def _intern(store: list[torch.Tensor], ids: dict[int, int], tensor: torch.Tensor, value: torch.Tensor) -> int:
        key = tensor.data_ptr()
        if key not in ids:
            ids[key] = len(store)
            store.append(value)
        return ids[key]


def _allowed_from_mask(mask: torch.Tensor) -> torch.Tensor:
    """(query, key) bool, True where the query may attend, from a bool or additive mask."""
    plane = mask[0, 0]
    if plane.dtype == torch.bool:
        return plane
    return plane > torch.finfo(plane.dtype).min / 2


def _rule_explains(record: LayerRecord, allowed: torch.Tensor) -> bool:
    n_query, n_key = allowed.shape
    if n_key != record.key.shape[1] or n_query != record.query.shape[1]:
        return False
    sample = np.unique(
        np.concatenate(
            [
                np.arange(min(64, n_query)),
                np.arange(max(0, n_query - 64), n_query),
                np.linspace(0, n_query - 1, num=min(n_query, 64)).astype(np.int64),
            ]
        )
    )
    rows = index(sample, allowed.device)
    return bool(torch.equal(allowed[rows], rule_allowed(record, rows, n_key)))


def _recording_attention(
    module: Any, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, attention_mask: Any, **kwargs: Any
) -> tuple[torch.Tensor, None]:
    recorder = _active.get()
    if recorder is not None:
        recorder.record(module, query, key, attention_mask, kwargs)
    if kwargs.get("softcap") is not None:
        return _softcap_attention(module, query, key, value, attention_mask, **kwargs)
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)


def _softcap_attention(
    module: Any,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    *,
    scaling: float | None = None,
    softcap: float,
    dropout: float = 0.0,
    is_causal: bool | None = None,
    **_: Any,
) -> tuple[torch.Tensor, None]:
    """Eager attention with tanh soft-capping of the scores (Gemma 2), as transformers' eager path does."""
    n_rep = query.shape[1] // key.shape[1]
    key = key.repeat_interleave(n_rep, dim=1)
    value = value.repeat_interleave(n_rep, dim=1)
    scale = scaling if scaling is not None else query.shape[-1] ** -0.5
    scores = torch.matmul(query, key.transpose(2, 3)) * scale
    scores = torch.tanh(scores / softcap) * softcap
    if attention_mask is not None:
        if attention_mask.dtype == torch.bool:
            scores = scores.masked_fill(~attention_mask, torch.finfo(scores.dtype).min)
        else:
            scores = scores + attention_mask[..., : key.shape[-2]]
    elif (is_causal if is_causal is not None else getattr(module, "is_causal", True)) and query.shape[2] > 1:
        n_query, n_key = query.shape[2], key.shape[2]
        causal = torch.ones(n_query, n_key, dtype=torch.bool, device=query.device).tril(n_key - n_query)
        scores = scores.masked_fill(~causal, torch.finfo(scores.dtype).min)
    weights = torch.softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype)
    weights = torch.nn.functional.dropout(weights, p=dropout, training=module.training)
    output = torch.matmul(weights, value).transpose(1, 2).contiguous()
    return output, None
