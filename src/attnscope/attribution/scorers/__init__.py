"""Scorers: what occlusion asks for the log-probability of a continuation after each occluded prompt.

- :class:`ModelScorer` (:mod:`.model`): the in-process causal LM, batched, with the whole
  next-token distribution (so occlusion also reports a KL divergence);
- :class:`CallableScorer`: any Python ``function(prompt, continuation) -> log-probability``;
- :mod:`.http`: OpenAI-compatible endpoints — ``/v1/completions`` (echoed prompt log-probabilities:
  any continuation) and ``/v1/chat/completions`` (log-probabilities of the answer: its first token,
  exact when among the endpoint's top 20, else an upper bound flagged ``Scored.bound``).

Each scorer says in a ``targets`` string which continuations it can score (read it with
``getattr(scorer, "targets", None)``: it is not part of the protocol). A scorer that can say what
comes next has ``next_token(prompt) -> str``; ``attribute`` asks it for the target when none is given.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from attnscope.progress import Progress, report

if TYPE_CHECKING:
    import torch


@dataclass
class Scored:
    logprob: float  # sum of the continuation tokens' log-probabilities
    next_logprobs: torch.Tensor | None = None  # (vocab,) log-softmax before the continuation, if the scorer has it
    bound: bool = False  # logprob is an upper bound (the token was not among the endpoint's top log-probabilities)


class Scorer(Protocol):
    """Anything that scores a continuation after prompts (a batch, for speed)."""

    def score(self, prompts: Sequence[str], continuation: str, progress: Progress | None = None) -> list[Scored]: ...


class CallableScorer:
    """A black-box scorer from ``function(prompt, continuation) -> log-probability``."""

    targets = "any continuation text the function scores"

    def __init__(self, function: Callable[[str, str], float]) -> None:
        self.function = function

    def score(self, prompts: Sequence[str], continuation: str, progress: Progress | None = None) -> list[Scored]:
        results = []
        for index, prompt in enumerate(prompts):
            report(progress, index, len(prompts), "scoring")
            value = float(self.function(prompt, continuation))
            if not np.isfinite(value) and value != float("-inf"):
                from attnscope.errors import ScorerError

                raise ScorerError(f"the scoring function returned {value!r} for a prompt; it must be a log-probability")
            results.append(Scored(value))
        report(progress, len(prompts), len(prompts), "scoring")
        return results


def __getattr__(name: str) -> Any:
    if name == "ModelScorer":
        from attnscope.attribution.scorers.model import ModelScorer

        return ModelScorer
    if name in ("OpenAICompletionsScorer", "OpenAIChatScorer"):
        from attnscope.attribution.scorers import http

        return getattr(http, name)
    raise AttributeError(name)
