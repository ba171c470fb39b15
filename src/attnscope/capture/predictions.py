"""Next-token predictions at every position: top-k ids and raw softmax probabilities."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from attnscope.errors import OutOfRangeError


@dataclass(frozen=True)
class Candidate:
    id: int
    token: str
    prob: float  # raw softmax probability over the whole vocabulary

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "token": self.token, "prob": self.prob}


@dataclass
class Predictions:
    """What the model predicts after each position (causal: the next token; seq2seq: the next
    target token; masked LMs with a head: the token at that position)."""

    top_ids: np.ndarray  # (positions, k) int64, most likely first
    top_probs: np.ndarray  # (positions, k) float32
    next_prob: np.ndarray  # (positions,) float32: probability given to the token that follows; NaN at the end
    strings: dict[int, str] = field(default_factory=dict)  # decoded text of every id in top_ids

    def __len__(self) -> int:
        return int(self.top_ids.shape[0])

    @property
    def k(self) -> int:
        return int(self.top_ids.shape[1])

    def top(self, position: int = -1, k: int | None = None) -> list[Candidate]:
        """The ``k`` most likely candidates after ``position`` (negative counts from the end)."""
        n = len(self)
        if not -n <= position < n:
            raise OutOfRangeError(f"position {position} out of range for {n} positions")
        count = self.k if k is None else min(max(int(k), 1), self.k)
        if self.top_ids[position, 0] < 0:
            raise OutOfRangeError(f"predictions at position {position} were not computed (predict='last')")
        ids = self.top_ids[position, :count]
        probs = self.top_probs[position, :count]
        return [Candidate(int(i), self.strings.get(int(i), ""), float(p)) for i, p in zip(ids, probs, strict=True)]


def decode_ids(tokenizer: Any, ids: np.ndarray) -> dict[int, str]:
    unique = sorted({int(i) for i in np.unique(ids)})
    texts = tokenizer.batch_decode([[i] for i in unique], skip_special_tokens=False, clean_up_tokenization_spaces=False)
    return dict(zip(unique, texts, strict=True))
