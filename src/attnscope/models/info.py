"""Architecture facts read from a model's config: layers, heads, KV heads, windows, context length."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class StackInfo:
    """One attention stack: ``decoder`` (causal LMs), ``encoder`` (BERT) or, for encoder-decoders,
    ``encoder``, ``decoder`` and ``cross`` (decoder queries over encoder keys)."""

    layers: int
    heads: int
    kv_heads: int


@dataclass(frozen=True)
class ArchitectureInfo:
    model_type: str
    kind: str  # "causal" | "masked" | "seq2seq"
    layers: int  # of the main stack
    heads: int
    kv_heads: int
    head_dim: int
    hidden_size: int
    vocab_size: int
    max_positions: int | None
    sliding_window: int | None
    layer_types: list[str] | None
    attn_softcap: float | None
    stacks: dict[str, StackInfo] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ArchitectureInfo:
        stacks = {name: StackInfo(**value) for name, value in data.get("stacks", {}).items()}
        return cls(**{**data, "stacks": stacks})


@dataclass(frozen=True)
class ModelInfo:
    """What a result says about the model that produced it: the ``model`` block of every JSON contract.

    ``fingerprint`` identifies the exact weights, tokenizer, dtype and device: caches (traces, head
    metrics, attributions) are keyed by it, so one model's numbers are never shown for another's.
    """

    spec: str
    name: str
    kind: str  # "causal" | "masked" | "seq2seq"
    model_type: str
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab_size: int
    max_positions: int | None
    sliding_window: int | None
    layer_types: list[str] | None
    stacks: dict[str, StackInfo]
    tokenizer: str
    special_tokens: dict[str, str]
    weights_sha256: str | None
    tokenizer_sha256: str | None
    dtype: str
    device: str
    fingerprint: str

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["stacks"] = {name: asdict(stack) for name, stack in self.stacks.items()}
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelInfo:
        """From :meth:`to_dict`; fields it lacks (older trace files, hand-made traces) get neutral defaults."""
        stacks = {
            name: StackInfo(int(v.get("layers", 0)), int(v.get("heads", 0)), int(v.get("kv_heads", v.get("heads", 0))))
            for name, v in (data.get("stacks") or {}).items()
        }
        main = next(iter(stacks.values()), StackInfo(0, 0, 0))
        spec = str(data.get("spec", "unknown"))
        defaults: dict[str, Any] = {
            "spec": spec,
            "name": spec,
            "kind": "causal",
            "model_type": "unknown",
            "layers": main.layers,
            "heads": main.heads,
            "kv_heads": main.kv_heads,
            "head_dim": 0,
            "vocab_size": 0,
            "max_positions": None,
            "sliding_window": None,
            "layer_types": None,
            "tokenizer": "unknown",
            "special_tokens": {},
            "weights_sha256": None,
            "tokenizer_sha256": None,
            "dtype": "unknown",
            "device": "unknown",
            "fingerprint": "",
        }
        given = {key: value for key, value in data.items() if key in cls.__dataclass_fields__}
        return cls(**{**defaults, **given, "stacks": stacks})


def fingerprint(*parts: object) -> str:
    """A short stable hash of what identifies a loaded model (weights, tokenizer, dtype, device, spec)."""
    digest = hashlib.sha256("\x1f".join("" if p is None else str(p) for p in parts).encode("utf-8"))
    return digest.hexdigest()[:20]


def _first(config: Any, *names: str) -> Any:
    for name in names:
        value = getattr(config, name, None)
        if value is not None:
            return value
    return None


def read_architecture(config: Any, kind: str) -> ArchitectureInfo:
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    heads = int(_first(text, "num_attention_heads", "n_head", "num_heads", "encoder_attention_heads"))
    kv_heads = int(_first(text, "num_key_value_heads") or heads)
    hidden = int(_first(text, "hidden_size", "n_embd", "d_model"))
    head_dim = int(_first(text, "head_dim", "d_kv") or hidden // heads)
    layers = int(_first(text, "num_hidden_layers", "n_layer", "num_layers", "decoder_layers"))
    max_positions = _first(text, "max_position_embeddings", "n_positions")
    window = _first(text, "sliding_window") if getattr(text, "use_sliding_window", True) is not False else None
    layer_types = _first(text, "layer_types")
    if kind == "seq2seq":
        enc_layers = int(_first(text, "encoder_layers", "num_layers") or layers)
        dec_layers = int(_first(text, "decoder_layers", "num_decoder_layers") or enc_layers)
        dec_heads = int(_first(text, "decoder_attention_heads", "num_heads") or heads)
        stacks = {
            "encoder": StackInfo(enc_layers, heads, heads),
            "decoder": StackInfo(dec_layers, dec_heads, dec_heads),
            "cross": StackInfo(dec_layers, dec_heads, dec_heads),
        }
        layers = dec_layers
    elif kind == "masked":
        stacks = {"encoder": StackInfo(layers, heads, kv_heads)}
    else:
        stacks = {"decoder": StackInfo(layers, heads, kv_heads)}
    return ArchitectureInfo(
        model_type=str(getattr(text, "model_type", getattr(config, "model_type", "unknown"))),
        kind=kind,
        layers=layers,
        heads=heads,
        kv_heads=kv_heads,
        head_dim=head_dim,
        hidden_size=hidden,
        vocab_size=int(_first(text, "vocab_size") or 0),
        max_positions=int(max_positions) if max_positions else None,
        sliding_window=int(window) if window else None,
        layer_types=list(layer_types) if layer_types else None,
        attn_softcap=_first(text, "attn_logit_softcapping"),
        stacks=stacks,
    )
