"""What an attribution explains: the target of gradient and occlusion methods.

- ``next-token`` (default): the token predicted after position ``query`` (default: the last
  token) — the model's top-1 token unless ``target`` names another one;
- ``continuation``: the given ``target`` text continuing the text after ``query``; the objective is
  the sum of the log-probabilities of its tokens;
- ``loss``: the language-model log-likelihood of the input itself (mean log-probability of every
  token given the ones before it); gradient methods only.

Attributions are defined for causal language models (the objective needs a next-token head).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from attnscope.capture.scoring import next_token_log_probs
from attnscope.capture.selection import resolve_index
from attnscope.capture.tokens import Token, check_text, tokenize
from attnscope.errors import InputError, UnsupportedError
from attnscope.models.loaded import LoadedModel

Objective = Literal["next-token", "continuation", "loss"]


@dataclass(frozen=True)
class Target:
    objective: str
    query: int  # token index whose prediction is explained (loss: the last token)
    ids: list[int]  # target token ids (loss: the input ids after the first)
    text: str | None  # the target text (decoded for next-token; None for loss)
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"objective": self.objective, "text": self.text, "ids": self.ids, "query": self.query}


def require_causal(model: LoadedModel, method: str) -> None:
    if model.kind != "causal" or not model.has_lm_head:
        raise UnsupportedError(
            f"{method} needs a causal language model with a next-token head; {model.name} is a {model.kind} model "
            "(attention, rollout and flow work for every kind)"
        )


def resolve_query(tokens: list[Token], query: int) -> int:
    n = len(tokens)
    return resolve_index(query, n, "query", "the text", "tokens")


def resolve_target(
    model: LoadedModel,
    tokens: list[Token],
    *,
    target: str | None = None,
    query: int = -1,
    objective: Objective | None = None,
) -> Target:
    """The :class:`Target` for ``tokens`` (see the module docstring)."""
    require_causal(model, "this attribution")
    position = resolve_query(tokens, query)
    ids = [t.id for t in tokens]
    if objective is None:
        objective = "next-token" if target is None else "continuation"
    if objective == "loss":
        if target is not None:
            raise InputError("the loss objective explains the input itself; do not pass a target")
        if len(tokens) < 2:
            raise InputError("the loss objective needs at least two tokens")
        model.check_length(len(ids))
        return Target("loss", len(tokens) - 1, ids[1:], None)
    if objective not in ("next-token", "continuation"):
        raise InputError(f"unknown objective {objective!r}; use next-token, continuation or loss")
    if target is None:
        if objective == "continuation":
            raise InputError("the continuation objective needs a target text")
        logprobs = next_token_log_probs(model, ids[: position + 1])
        best = int(logprobs.argmax())
        probability = float(torch.exp(logprobs[best]))
        text = model.tokenizer.decode([best])
        return Target("next-token", position, [best], text, {"prob": probability})
    target = check_text(target)
    target_ids = [t.id for t in tokenize(model.tokenizer, target, add_special_tokens=False)]
    if not target_ids:
        raise InputError("the target text gives no tokens")
    model.check_length(position + 1 + len(target_ids), "the text with its target")
    kind = "next-token" if objective == "next-token" else "continuation"
    if kind == "next-token" and len(target_ids) != 1:
        raise InputError(f"the target {target!r} is {len(target_ids)} tokens; the next-token objective needs one")
    return Target(kind, position, target_ids, target)
