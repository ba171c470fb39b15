"""``LoadedModel``: a Hugging Face model with its tokenizer, kind, architecture facts and provenance."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from attnscope.models.info import ArchitectureInfo


@dataclass
class LoadedModel:
    spec: str  # what the user asked for: alias, hub id, path, or tiny:<family>
    name: str  # human-readable model name
    kind: str  # "causal" | "masked" | "seq2seq"
    model: Any  # transformers.PreTrainedModel, in eval mode
    tokenizer: Any  # a fast tokenizer (character offsets are required)
    arch: ArchitectureInfo
    provenance: dict[str, Any]
    device: str
    dtype: str
    has_lm_head: bool
    # One forward at a time per model: capture switches attention implementations on the model.
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False, compare=False)

    @property
    def weights_sha256(self) -> str:
        return str(self.provenance.get("weights_sha256", ""))

    @property
    def tokenizer_class(self) -> str:
        return type(self.tokenizer).__name__

    def special_tokens(self) -> dict[str, str]:
        """Named special tokens (bos, eos, pad, ...) and their strings."""
        named = getattr(self.tokenizer, "special_tokens_map", {}) or {}
        return {key: str(value) for key, value in named.items() if isinstance(value, str)}

    def info(self) -> dict[str, Any]:
        """The model block of the CLI's ``--json`` output (and the server's ``/api/model``)."""
        return {
            "spec": self.spec,
            "name": self.name,
            "kind": self.kind,
            "layers": self.arch.layers,
            "heads": self.arch.heads,
            "kv_heads": self.arch.kv_heads,
            "head_dim": self.arch.head_dim,
            "vocab_size": self.arch.vocab_size,
            "max_positions": self.arch.max_positions,
            "sliding_window": self.arch.sliding_window,
            "layer_types": self.arch.layer_types,
            "stacks": {name: vars(stack) for name, stack in self.arch.stacks.items()},
            "tokenizer": self.tokenizer_class,
            "special_tokens": self.special_tokens(),
            "weights_sha256": self.weights_sha256,
            "dtype": self.dtype,
            "device": self.device,
        }
