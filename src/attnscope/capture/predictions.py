"""Next-token predictions at every position: top-k ids and raw softmax probabilities.

Computed on demand: a capture keeps the final hidden states and runs the LM head for the positions
asked for (the last one at once, by default); rows not computed yet hold id -1 and NaN. A trace
loaded from a file has what was computed before it was saved (saving computes every position).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
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


# (begin, end) -> (top ids (rows, k), top probabilities (rows, k), probability of the next token (rows,))
RowsFunction = Callable[[int, int], tuple[np.ndarray, np.ndarray, np.ndarray]]


@dataclass
class Predictions:
    """What the model predicts after each position (causal: the next token; seq2seq: the next
    target token; masked LMs with a head: the token at that position)."""

    top_ids: np.ndarray  # (positions, k) int64, most likely first; -1 where not computed
    top_probs: np.ndarray  # (positions, k) float32
    next_prob: np.ndarray  # (positions,) float32: probability given to the token that follows; NaN at the end
    strings: dict[int, str] = field(default_factory=dict)  # decoded text of every id in top_ids
    compute_rows: RowsFunction | None = field(default=None, repr=False, compare=False)
    decode: Callable[[np.ndarray], dict[int, str]] | None = field(default=None, repr=False, compare=False)
    chunk: int = field(default=512, repr=False, compare=False)  # rows per LM-head call (bounds its logits)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def __len__(self) -> int:
        return int(self.top_ids.shape[0])

    @property
    def k(self) -> int:
        return int(self.top_ids.shape[1])

    def computed(self, position: int) -> bool:
        return bool(self.top_ids[position, 0] >= 0)

    def ensure(self, begin: int = 0, end: int | None = None) -> None:
        """Compute the rows of positions ``begin..end-1`` not computed yet (when the model is at hand),
        ``chunk`` rows per LM-head call. Safe to call from several threads."""
        end = len(self) if end is None else end
        if self.compute_rows is None or all(self.computed(p) for p in range(begin, end)):
            return
        with self._lock:
            missing = [p for p in range(begin, end) if not self.computed(p)]
            first = missing[0] if missing else end
            while missing and first <= missing[-1]:
                last = min(missing[-1] + 1, first + self.chunk)
                ids, probs, following = self.compute_rows(first, last)
                if self.decode is not None:
                    self.strings.update(self.decode(ids))
                self.top_probs[first:last], self.next_prob[first:last] = probs, following
                self.top_ids[first:last] = ids  # last: a row counts as computed once its ids are in
                first = last

    def available(self, position: int) -> bool:
        """Whether the predictions after ``position`` exist (computing them now if they can be)."""
        if not self.computed(position):
            self.ensure(position % len(self), position % len(self) + 1)
        return self.computed(position)

    def top(self, position: int = -1, k: int | None = None) -> list[Candidate]:
        """The ``k`` most likely candidates after ``position`` (negative counts from the end)."""
        n = len(self)
        if not -n <= position < n:
            raise OutOfRangeError(f"position {position} out of range for {n} positions")
        count = self.k if k is None else min(max(int(k), 1), self.k)
        if not self.available(position):
            raise OutOfRangeError(f"predictions at position {position} were not computed before the trace was saved")
        ids = self.top_ids[position, :count]
        probs = self.top_probs[position, :count]
        return [Candidate(int(i), self.strings.get(int(i), ""), float(p)) for i, p in zip(ids, probs, strict=True)]


def decode_ids(tokenizer: Any, ids: np.ndarray) -> dict[int, str]:
    unique = sorted({int(i) for i in np.unique(ids)})
    texts = tokenizer.batch_decode([[i] for i in unique], skip_special_tokens=False, clean_up_tokenization_spaces=False)
    return dict(zip(unique, texts, strict=True))
