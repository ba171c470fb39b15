"""A generation, step by step: :class:`Step` and :class:`GenerationTrace` (torch-free).

A ``GenerationTrace`` is a :class:`Trace` over prompt + generated tokens: every read of a trace
(attention rows, tiles, head metrics, predictions, saving) works on it. Step ``s`` produced the token
at position ``p = prompt_length + s``; what it attended to is the row of query ``p - 1`` (the
position whose prediction it was) over keys ``0 … p - 1``, and its candidates are the predictions
after ``p - 1``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from attnscope.capture.predictions import Candidate
from attnscope.capture.tokens import Token
from attnscope.capture.trace import Trace
from attnscope.errors import OutOfRangeError

STOP_REASONS = ("eos", "stop", "length")


@dataclass(frozen=True)
class Step:
    step: int
    position: int  # index of the generated token in the trace's tokens
    token_id: int
    prob: float  # raw softmax probability of the token in the model's distribution
    logprob_cum: float  # sum of the log-probabilities of steps 0 … step
    sampled_prob: float | None = None  # its probability after the sampling processors (sampling only)
    beam: int | None = None  # beam search: the beam whose continuation the token was
    parent: int | None = None  # beam search: that beam's beam at the step before

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Step:
        return cls(**data)


@dataclass
class GenerationTrace(Trace):
    """A :class:`Trace` of prompt + generated tokens, plus the generation's steps."""

    prompt_length: int = 0  # tokens of the prompt (positions 0 … prompt_length - 1)
    prompt_chars: int = 0  # characters of the prompt: text[:prompt_chars]
    steps: list[Step] = field(default_factory=list)
    stop_reason: str = "length"  # eos | stop (a stop string) | length (max_new_tokens)
    settings: dict[str, Any] = field(default_factory=dict)  # max_new_tokens, do_sample, ... as used

    @property
    def prompt_text(self) -> str:
        return self.text[: self.prompt_chars]

    @property
    def generated_text(self) -> str:
        return self.text[self.prompt_chars :]

    @property
    def prompt_tokens(self) -> list[Token]:
        return self.tokens[: self.prompt_length]

    @property
    def generated_tokens(self) -> list[Token]:
        """The generated tokens, spans counted in :attr:`generated_text` (index: position in the trace)."""
        shift = self.prompt_chars
        return [
            Token(
                t.index,
                t.id,
                t.text,
                None if t.start is None else t.start - shift,
                None if t.end is None else t.end - shift,
                t.special,
            )
            for t in self.tokens[self.prompt_length :]
        ]

    def step(self, step: int) -> Step:
        if not -len(self.steps) <= step < len(self.steps):
            raise OutOfRangeError(f"step {step} out of range for {len(self.steps)} steps")
        return self.steps[step]

    def step_candidates(self, step: int, k: int | None = None) -> list[Candidate]:
        """The top-k the model gave at ``step`` (raw probabilities, before any sampling processor)."""
        return self.top_predictions(self.step(step).position - 1, k)

    def step_attention(self, step: int, layer: int = -1, head: Any = "mean") -> np.ndarray:
        """(position,) what step ``step`` attended to: the row of its query over keys 0 … p - 1."""
        position = self.step(step).position
        return np.asarray(self.attention(layer, head, rows=[position - 1])[0][:position])
