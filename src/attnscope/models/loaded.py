"""``LoadedModel``: a Hugging Face model with its tokenizer, kind, architecture facts and provenance."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from attnscope.errors import TooLongError
from attnscope.models.info import ArchitectureInfo, ModelInfo, fingerprint


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
    def weights_sha256(self) -> str | None:
        """SHA-256 of the weight files (None for hub models, whose files attnscope did not hash)."""
        value = self.provenance.get("weights_sha256")
        return str(value) if value else None

    @property
    def tokenizer_class(self) -> str:
        return type(self.tokenizer).__name__

    def special_tokens(self) -> dict[str, str]:
        """Named special tokens (bos, eos, pad, ...) and their strings."""
        named = getattr(self.tokenizer, "special_tokens_map", {}) or {}
        return {key: str(value) for key, value in named.items() if isinstance(value, str)}

    def info(self) -> ModelInfo:
        """The typed model block of every result (``to_dict()`` is its JSON)."""
        tokenizer_sha = self.provenance.get("tokenizer_sha256")
        return ModelInfo(
            spec=self.spec,
            name=self.name,
            kind=self.kind,
            model_type=self.arch.model_type,
            layers=self.arch.layers,
            heads=self.arch.heads,
            kv_heads=self.arch.kv_heads,
            head_dim=self.arch.head_dim,
            vocab_size=self.arch.vocab_size,
            max_positions=self.arch.max_positions,
            sliding_window=self.arch.sliding_window,
            layer_types=self.arch.layer_types,
            stacks=dict(self.arch.stacks),
            tokenizer=self.tokenizer_class,
            special_tokens=self.special_tokens(),
            weights_sha256=self.weights_sha256,
            tokenizer_sha256=tokenizer_sha,
            dtype=self.dtype,
            device=self.device,
            fingerprint=self.fingerprint,
        )

    @property
    def fingerprint(self) -> str:
        """Identifies these weights, tokenizer, dtype and device, and an adapter applied over the
        weights (its SHA-256, only when there is one: fingerprints without adapters are unchanged)."""
        adapter = self.provenance.get("adapter_sha256")
        return fingerprint(
            self.weights_sha256 or f"{self.provenance.get('source') or self.spec}@{self.provenance.get('revision')}",
            self.provenance.get("tokenizer_sha256"),
            self.dtype,
            self.device,
            *((f"adapter:{adapter}",) if adapter else ()),
        )

    def check_length(self, n_tokens: int, what: str = "the text") -> None:
        """Refuse ``n_tokens`` beyond the model's context with a clear :class:`TooLongError`."""
        limit = self.arch.max_positions
        if limit and n_tokens > limit:
            raise TooLongError(f"{what} is {n_tokens:,} tokens; {self.name} reads at most {limit:,}")
