"""Occlusion: take each unit (token, word, sentence, paragraph) out and measure what the target loses.

The score of a unit is ``log p(target | text) − log p(target | text without the unit)``: positive
when the unit supports the target. Units are measured whole (a word is removed as a word, not as
the sum of its tokens). With an in-process model the result also has the KL divergence
``KL(p(· | text) ‖ p(· | occluded))`` of the next-token distribution at the query.

Two ways to occlude:

- ``remove`` (default): delete the unit from the text and score the new text. Removing a unit
  deletes exactly the characters of its tokens — a word-piece tokenizer's token `` is`` carries its
  leading space, so removing the word ``is`` gives the same text as removing the token `` is``
  (without a tokenizer, a unit takes the whitespace before it along). It only needs
  log-probabilities of a continuation given a prompt, so it works with any
  :class:`~attnscope.attribution.scorers.Scorer`: the in-process model, a Python callable, or an
  OpenAI-compatible HTTP endpoint.
- ``mask``: replace the unit's tokens by the tokenizer's mask/unk/pad token, keeping positions
  (in-process model only).

Inserted special tokens (BOS, ...) have no characters to remove: their score is NaN (``null`` in
JSON). Units after the query are outside the prompt: 0. When removing a unit leaves no prompt at all
(the only word or sentence), the in-process scorer scores the target after the tokenizer's BOS
token, or its EOS token when it has no BOS (the conventional start of a document).

A continuation is scored on the tokens of ``prompt + continuation`` that contain a character of
the continuation (the prompt and continuation are tokenized together, as an HTTP endpoint does).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from attnscope.attribution.scorers import Scored, Scorer
from attnscope.capture.scoring import kl_divergence
from attnscope.errors import InputError, ScorerError
from attnscope.progress import Progress

if TYPE_CHECKING:
    from attnscope.analysis.units import Unit
    from attnscope.attribution.targets import Target
    from attnscope.capture.tokens import Token
    from attnscope.models.loaded import LoadedModel

Mode = Literal["remove", "mask"]
MODES = ("remove", "mask")


@dataclass
class OcclusionResult:
    scores: np.ndarray  # (units,) log-probability drop; NaN where a unit cannot be occluded
    kl: np.ndarray | None  # (units,) KL of the next-token distribution, when the scorer gives it
    base_logprob: float
    details: dict[str, Any] = field(default_factory=dict)


def removal_spans(unit: Unit, tokens: Sequence[Token] | None, text: str, end: int) -> list[tuple[int, int]]:
    """The character ranges (before ``end``) that removing ``unit`` deletes (see the module docstring)."""
    if unit.start is None or unit.end is None:
        return []
    spans: list[tuple[int, int]] = []
    if tokens is not None and unit.tokens:
        for index in unit.tokens:
            first, last = tokens[index].start, tokens[index].end
            if first is not None and last is not None and first < last:
                spans.append((first, last))
        spans.sort()
    else:
        begin = unit.start
        while begin > 0 and text[begin - 1].isspace():
            begin -= 1
        spans = [(begin, unit.end)]
    merged: list[tuple[int, int]] = []
    for begin, stop in spans:
        begin, stop = min(begin, end), min(stop, end)
        if begin >= stop:
            continue
        if merged and begin <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], stop))
        else:
            merged.append((begin, stop))
    return merged


def without(text: str, spans: Sequence[tuple[int, int]]) -> str:
    """``text`` with the (sorted, disjoint) character ``spans`` cut out."""
    pieces, cursor = [], 0
    for begin, end in spans:
        pieces.append(text[cursor:begin])
        cursor = end
    return "".join(pieces) + text[cursor:]


def occlusion(
    text: str,
    units: Sequence[Unit],
    target: Target,
    *,
    tokens: Sequence[Token] | None = None,
    scorer: Scorer | None = None,
    model: LoadedModel | None = None,
    prompt_end: int,
    mode: Mode = "remove",
    progress: Progress | None = None,
) -> OcclusionResult:
    """Occlusion scores of ``units`` for ``target`` (see the module docstring).

    Args:
        text: the analysed text; the prompt is ``text[:prompt_end]`` (the end of the query token).
        units: from :func:`attnscope.analysis.units.make_units`.
        target: ``next-token`` or ``continuation`` (its ``text`` is the continuation).
        tokens: the text's tokens (what the units are made of); None for black-box scorers.
        scorer: any scorer; default: a :class:`~attnscope.attribution.scorers.model.ModelScorer` over ``model``.
        mode: ``remove`` (any scorer) or ``mask`` (in-process ``model`` only).
    """
    if target.objective == "loss":
        raise InputError("occlusion explains a target after the prompt; the loss objective is for gradient methods")
    if target.text is None:
        raise InputError("occlusion needs the target as text")
    if mode not in MODES:
        raise InputError(f"unknown occlusion mode {mode!r}; use remove or mask")
    scores = np.full(len(units), np.nan)
    for index, unit in enumerate(units):
        if unit.start is not None and unit.start >= prompt_end:
            scores[index] = 0.0
    if mode == "mask":
        if model is None:
            raise InputError("mask occlusion needs the in-process model (black-box scorers work with mode='remove')")
        return _mask_occlusion(model, text, units, target, scores, progress)
    prompt = text[:prompt_end]
    removals = {i: removal_spans(u, tokens, text, prompt_end) for i, u in enumerate(units) if u.start is not None}
    inside = [i for i, spans in removals.items() if spans]
    prompts = [prompt] + [without(prompt, removals[i]) for i in inside]
    whole = "\ufffd" not in target.text  # a byte piece of a character cannot be sent as text
    if scorer is None:
        if model is None:
            raise InputError("occlusion needs a scorer or a model")
        from attnscope.attribution.scorers.model import ModelScorer

        model_scorer = ModelScorer(model)
        if not whole:  # in-process: score the predicted token id itself after each prompt
            scored = model_scorer.score_token_ids(prompts, target.ids, progress)
            return _collect(units, inside, scored, scores, {"mode": mode, "scorer": "ModelScorer (token ids)"})
        scorer = model_scorer
    elif not whole:
        raise InputError("the target is part of a character; pass the target as text (--target) for this scorer")
    scored = scorer.score(prompts, target.text, progress=progress)
    if len(scored) != len(prompts):
        raise InputError(f"the scorer returned {len(scored)} scores for {len(prompts)} prompts")
    return _collect(units, inside, scored, scores, {"mode": mode, "scorer": type(scorer).__name__})


def _collect(
    units: Sequence[Unit], inside: list[int], scored: list[Scored], scores: np.ndarray, details: dict[str, Any]
) -> OcclusionResult:
    base = scored[0]
    if base.bound:
        raise ScorerError(
            "the scorer cannot score this target after the whole prompt (not among its top log-probabilities); "
            "a chat endpoint scores only the first token of its answer"
        )
    kl = np.full(len(units), np.nan) if base.next_logprobs is not None else None
    bounds = []
    for index, result in zip(inside, scored[1:], strict=True):
        scores[index] = base.logprob - result.logprob
        if result.bound:
            bounds.append(index)
        if kl is not None:
            kl[index] = kl_divergence(base.next_logprobs, result.next_logprobs)
    if kl is not None:
        kl[np.isnan(kl) & ~np.isnan(scores)] = 0.0
    if bounds:
        details["bounded_units"] = bounds
    return OcclusionResult(scores, kl, base.logprob, details)


def mask_id(model: LoadedModel) -> int:
    tokenizer = model.tokenizer
    for name in ("mask_token_id", "unk_token_id", "pad_token_id", "eos_token_id"):
        value = getattr(tokenizer, name, None)
        if value is not None:
            return int(value)
    raise InputError("this tokenizer has no mask, unk, pad or eos token to occlude with")


def _mask_occlusion(
    model: LoadedModel,
    text: str,
    units: Sequence[Unit],
    target: Target,
    scores: np.ndarray,
    progress: Progress | None,
) -> OcclusionResult:
    from attnscope.attribution.scorers.model import ModelScorer
    from attnscope.capture.tokens import tokenize

    tokens = tokenize(model.tokenizer, text)
    prompt_ids = [t.id for t in tokens[: target.query + 1]]
    replacement = mask_id(model)
    inside = [i for i, u in enumerate(units) if u.start is not None and any(t <= target.query for t in u.tokens)]
    sequences = [prompt_ids + target.ids]
    for index in inside:
        masked = list(prompt_ids)
        for token in units[index].tokens:
            if token <= target.query:
                masked[token] = replacement
        sequences.append(masked + target.ids)
    scored = ModelScorer(model).score_ids(sequences, [len(prompt_ids)] * len(sequences), progress)
    return _collect(units, inside, scored, scores, {"mode": "mask", "mask_token_id": replacement})
