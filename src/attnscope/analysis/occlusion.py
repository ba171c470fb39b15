"""Occlusion: take each unit (token, word, sentence, paragraph) out and measure what the target loses.

The score of a unit is ``log p(target | text) − log p(target | text without the unit)``: positive
when the unit supports the target. Units are measured whole (a word is removed as a word, not as
the sum of its tokens). With an in-process model the result also has the KL divergence
``KL(p(· | text) ‖ p(· | occluded))`` of the next-token distribution at the query.

Two ways to occlude:

- ``remove`` (default): delete the unit's characters from the text and score the new text. It only
  needs log-probabilities of a continuation given a prompt, so it works with any :class:`Scorer`:
  the in-process model, a Python callable, or an OpenAI-compatible HTTP completions endpoint.
- ``mask``: replace the unit's tokens by the tokenizer's mask/unk/pad token, keeping positions
  (in-process model only).

Inserted special tokens (BOS, ...) have no characters to remove: their score is NaN (``null`` in
JSON). Units after the query are outside the prompt: 0.

A continuation is scored on the tokens of ``prompt + continuation`` that contain a character of
the continuation (the prompt and continuation are tokenized together, as an HTTP endpoint does).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

import numpy as np

from attnscope.analysis.registry import register
from attnscope.errors import AttnscopeError, InputError

if TYPE_CHECKING:
    from attnscope.analysis.targets import Target
    from attnscope.analysis.units import Unit
    from attnscope.models.loaded import LoadedModel

Mode = Literal["remove", "mask"]
SCORE_BATCH = 8  # sequences per forward pass for the in-process scorer
SHARE_PREFIX_MIN_TOKENS = 128  # from this length on, occluded texts reuse the original's key/value cache


@dataclass
class Scored:
    logprob: float  # sum of the continuation tokens' log-probabilities
    next_logprobs: np.ndarray | None = None  # (vocab,) log-softmax before the continuation, if the scorer has it


class Scorer(Protocol):
    """Anything that scores a continuation after prompts (a batch, for speed)."""

    def score(self, prompts: Sequence[str], continuation: str) -> list[Scored]: ...


class CallableScorer:
    """A black-box scorer from ``function(prompt, continuation) -> log-probability``."""

    def __init__(self, function: Callable[[str, str], float]) -> None:
        self.function = function

    def score(self, prompts: Sequence[str], continuation: str) -> list[Scored]:
        return [Scored(float(self.function(prompt, continuation))) for prompt in prompts]


class OpenAICompletionsScorer:
    """Scores through an OpenAI-compatible ``/v1/completions`` endpoint that returns log-probabilities.

    Sends ``prompt + continuation`` with ``echo: true, max_tokens: 0, logprobs: 0`` and sums
    ``token_logprobs`` of the echoed tokens whose ``text_offset`` range reaches into the continuation
    (the convention of lm-evaluation-harness). ``attnscope serve`` provides such an endpoint.
    """

    def __init__(self, base_url: str, model: str | None = None, *, api_key: str | None = None, timeout: float = 120):
        self.url = base_url.rstrip("/") + ("" if base_url.rstrip("/").endswith("/v1") else "/v1") + "/completions"
        self.model = model
        self.api_key = api_key
        self.timeout = timeout

    def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        request = urllib.request.Request(self.url, json.dumps(body).encode(), headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return dict(json.loads(response.read()))
        except urllib.error.HTTPError as error:
            detail = error.read().decode("utf-8", "replace")[:300]
            raise AttnscopeError(f"completions endpoint {self.url} answered {error.code}: {detail}") from None
        except (urllib.error.URLError, TimeoutError, OSError) as error:
            raise AttnscopeError(f"cannot reach completions endpoint {self.url}: {error}") from None

    def score(self, prompts: Sequence[str], continuation: str) -> list[Scored]:
        results = []
        for prompt in prompts:
            body: dict[str, Any] = {
                "prompt": prompt + continuation,
                "max_tokens": 0,
                "echo": True,
                "logprobs": 0,
                "temperature": 0,
            }
            if self.model:
                body["model"] = self.model
            answer = self._post(body)
            try:
                logprobs = answer["choices"][0]["logprobs"]
                offsets, values, pieces = logprobs["text_offset"], logprobs["token_logprobs"], logprobs["tokens"]
            except (KeyError, IndexError, TypeError):
                raise AttnscopeError(f"completions endpoint {self.url} returned no echoed log-probabilities") from None
            total = 0.0
            inside = False  # from the first token that reaches past the prompt, as ModelScorer counts
            for offset, value, piece in zip(offsets, values, pieces, strict=True):
                inside = inside or offset + len(piece) > len(prompt)
                if inside:
                    if value is None:
                        raise AttnscopeError("the endpoint gave no log-probability for a continuation token")
                    total += float(value)
            results.append(Scored(total))
        return results


class ModelScorer:
    """Scores with an in-process causal LM (batched), with the full next-token distribution."""

    def __init__(self, model: LoadedModel) -> None:
        from attnscope.analysis.targets import require_causal

        require_causal(model, "occlusion with a model scorer")
        self.model = model

    def score(self, prompts: Sequence[str], continuation: str) -> list[Scored]:
        from attnscope.capture.tokens import tokenize

        sequences, starts = [], []
        for prompt in prompts:
            tokens = tokenize(self.model.tokenizer, prompt + continuation)
            first = next(
                (i for i, t in enumerate(tokens) if t.end is not None and t.end > len(prompt) and t.start is not None),
                len(tokens),
            )
            if first == 0 or first == len(tokens):
                raise InputError("cannot score: the continuation merges into the start of the prompt or is empty")
            sequences.append([t.id for t in tokens])
            starts.append(first)
        # long sequences: reusing the shared prefix saves about half the work; short ones gain more from batching
        if len(sequences) > 1 and len(sequences[0]) >= SHARE_PREFIX_MIN_TOKENS and self._can_share_prefix():
            return self.score_ids_sharing_prefix(sequences, starts)
        return self.score_ids(sequences, starts)

    def _can_share_prefix(self) -> bool:
        """Full-attention decoders only (a sliding-window cache cannot be cut back to a prefix)."""
        return self.model.arch.sliding_window is None and all(
            kind == "full_attention" for kind in (self.model.arch.layer_types or [])
        )

    def score_ids_sharing_prefix(self, sequences: Sequence[list[int]], starts: Sequence[int]) -> list[Scored]:
        """Like :meth:`score_ids`; the first sequence's key/value cache is reused for the tokens
        every other sequence shares with it at its start (occluding a unit leaves the text before
        it unchanged), so only the rest of each sequence runs: about half the work on average."""
        import copy

        import torch

        from attnscope.capture.engine import lm_logits

        hf = self.model.model
        device = next(hf.parameters()).device
        reference = sequences[0]
        results: list[Scored] = []
        with self.model.lock, torch.inference_mode():
            out = hf.base_model(input_ids=torch.tensor([reference], device=device), use_cache=True)
            cache = out.past_key_values
            hidden_reference = out.last_hidden_state[0]
            for sequence, start in zip(sequences, starts, strict=True):
                shared = 0
                limit = min(len(sequence), len(reference), start - 1)  # rows from start - 1 on are needed
                while shared < limit and sequence[shared] == reference[shared]:
                    shared += 1
                if sequence is reference:
                    hidden = hidden_reference
                    offset = 0
                elif shared == 0:
                    hidden = hf.base_model(input_ids=torch.tensor([sequence], device=device), use_cache=False)
                    hidden, offset = hidden.last_hidden_state[0], 0
                else:
                    past = copy.deepcopy(cache)
                    past.crop(shared - len(reference))  # keep the first `shared` positions
                    rest = torch.tensor([sequence[shared:]], device=device)
                    hidden = hf.base_model(input_ids=rest, past_key_values=past, use_cache=True).last_hidden_state[0]
                    offset = shared
                positions = torch.arange(start - 1 - offset, len(sequence) - 1 - offset, device=device)
                logprobs = torch.log_softmax(lm_logits(hf, hidden[positions]).float(), dim=-1)
                wanted = torch.tensor(sequence[start:], device=device)
                value = float(logprobs[torch.arange(len(wanted)), wanted].sum())
                results.append(Scored(value, logprobs[0].cpu().numpy().astype(np.float64)))
        return results

    def score_token_ids(self, prompts: Sequence[str], continuation: list[int]) -> list[Scored]:
        """``continuation`` token ids scored after each prompt (tokenized on its own)."""
        from attnscope.capture.tokens import tokenize

        sequences = [[t.id for t in tokenize(self.model.tokenizer, prompt)] for prompt in prompts]
        return self.score_ids([s + list(continuation) for s in sequences], [len(s) for s in sequences])

    def score_ids(self, sequences: Sequence[list[int]], starts: Sequence[int]) -> list[Scored]:
        """Tokens ``sequence[start:]`` scored given ``sequence[:start]``, for each sequence."""
        import torch

        from attnscope.capture.engine import lm_logits

        hf = self.model.model
        device = next(hf.parameters()).device
        pad = 0
        results: list[Scored] = []
        with self.model.lock, torch.inference_mode():
            for begin in range(0, len(sequences), SCORE_BATCH):
                batch, batch_starts = sequences[begin : begin + SCORE_BATCH], starts[begin : begin + SCORE_BATCH]
                width = max(len(s) for s in batch)
                ids = torch.full((len(batch), width), pad, dtype=torch.long, device=device)
                mask = torch.zeros((len(batch), width), dtype=torch.long, device=device)
                for row, sequence in enumerate(batch):  # right padding: positions stay 0..n-1
                    ids[row, : len(sequence)] = torch.tensor(sequence, device=device)
                    mask[row, : len(sequence)] = 1
                hidden = hf.base_model(input_ids=ids, attention_mask=mask, use_cache=False).last_hidden_state
                for row, (sequence, start) in enumerate(zip(batch, batch_starts, strict=True)):
                    positions = torch.arange(start - 1, len(sequence) - 1, device=device)
                    logits = lm_logits(hf, hidden[row, positions]).float()
                    logprobs = torch.log_softmax(logits, dim=-1)  # (continuation, vocab)
                    wanted = torch.tensor(sequence[start:], device=device)
                    value = float(logprobs[torch.arange(len(wanted)), wanted].sum())
                    results.append(Scored(value, logprobs[0].cpu().numpy().astype(np.float64)))
        return results


@dataclass
class OcclusionResult:
    scores: np.ndarray  # (units,) log-probability drop; NaN where a unit cannot be occluded
    kl: np.ndarray | None  # (units,) KL of the next-token distribution, when the scorer gives it
    base_logprob: float
    details: dict[str, Any] = field(default_factory=dict)


def _kl(reference: np.ndarray | None, other: np.ndarray | None) -> float:
    if reference is None or other is None:
        return float("nan")
    p = np.exp(reference)
    return float(np.sum(p * (reference - other)))


def _mask_id(model: LoadedModel) -> int:
    tokenizer = model.tokenizer
    for name in ("mask_token_id", "unk_token_id", "pad_token_id", "eos_token_id"):
        value = getattr(tokenizer, name, None)
        if value is not None:
            return int(value)
    raise InputError("this tokenizer has no mask, unk, pad or eos token to occlude with")


@register("occlusion", "attribution", "log-probability drop of the target when each unit is removed (or masked)")
def occlusion(
    text: str,
    units: Sequence[Unit],
    target: Target,
    *,
    scorer: Scorer | None = None,
    model: LoadedModel | None = None,
    prompt_end: int,
    mode: Mode = "remove",
) -> OcclusionResult:
    """Occlusion scores of ``units`` for ``target`` (see the module docstring).

    Args:
        text: the analysed text; the prompt is ``text[:prompt_end]`` (the end of the query token).
        units: from :func:`attnscope.analysis.units.make_units`.
        target: ``next-token`` or ``continuation`` (its ``text`` is the continuation).
        scorer: any :class:`Scorer`; default: a :class:`ModelScorer` over ``model``.
        mode: ``remove`` (any scorer) or ``mask`` (in-process ``model`` only).
    """
    if target.objective == "loss":
        raise InputError("occlusion explains a target after the prompt; the loss objective is for gradient methods")
    if target.text is None:
        raise InputError("occlusion needs the target as text")
    if mode not in ("remove", "mask"):
        raise InputError(f"unknown occlusion mode {mode!r}; use remove or mask")
    scores = np.full(len(units), np.nan)
    inside = [i for i, u in enumerate(units) if u.start is not None and u.end is not None and u.start < prompt_end]
    for index, unit in enumerate(units):
        if unit.start is not None and unit.start >= prompt_end:
            scores[index] = 0.0
    if mode == "mask":
        if model is None:
            raise InputError("mask occlusion needs the in-process model (black-box scorers work with mode='remove')")
        return _mask_occlusion(model, text, units, target, prompt_end, scores)
    prompt = text[:prompt_end]
    prompts = [prompt] + [prompt[: units[i].start] + prompt[units[i].end :] for i in inside]
    whole = "\ufffd" not in target.text  # a byte piece of a character cannot be sent as text
    if scorer is None:
        if model is None:
            raise InputError("occlusion needs a scorer or a model")
        scorer = ModelScorer(model)
        if not whole:  # in-process: score the predicted token id itself after each prompt
            scored = scorer.score_token_ids(prompts, target.ids)
            return _collect(units, inside, scored, scores, {"mode": mode, "scorer": "ModelScorer (token ids)"})
    elif not whole:
        raise InputError("the target is part of a character; pass the target as text (--target) for this scorer")
    scored = scorer.score(prompts, target.text)
    return _collect(units, inside, scored, scores, {"mode": mode, "scorer": type(scorer).__name__})


def _collect(
    units: Sequence[Unit], inside: list[int], scored: list[Scored], scores: np.ndarray, details: dict[str, Any]
) -> OcclusionResult:
    base = scored[0]
    kl = np.full(len(units), np.nan) if base.next_logprobs is not None else None
    for index, result in zip(inside, scored[1:], strict=True):
        scores[index] = base.logprob - result.logprob
        if kl is not None:
            kl[index] = _kl(base.next_logprobs, result.next_logprobs)
    if kl is not None:
        kl[np.isnan(kl) & ~np.isnan(scores)] = 0.0
    return OcclusionResult(scores, kl, base.logprob, details)


def _mask_occlusion(
    model: LoadedModel, text: str, units: Sequence[Unit], target: Target, prompt_end: int, scores: np.ndarray
) -> OcclusionResult:
    from attnscope.capture.tokens import tokenize

    tokens = tokenize(model.tokenizer, text)
    prompt_ids = [t.id for t in tokens[: target.query + 1]]
    replacement = _mask_id(model)
    scorer = ModelScorer(model)
    inside = [i for i, u in enumerate(units) if u.start is not None and any(t <= target.query for t in u.tokens)]
    sequences = [prompt_ids + target.ids]
    for index in inside:
        masked = list(prompt_ids)
        for token in units[index].tokens:
            if token <= target.query:
                masked[token] = replacement
        sequences.append(masked + target.ids)
    scored = scorer.score_ids(sequences, [len(prompt_ids)] * len(sequences))
    base = scored[0]
    kl = np.full(len(units), np.nan)
    for index, result in zip(inside, scored[1:], strict=True):
        scores[index] = base.logprob - result.logprob
        kl[index] = _kl(base.next_logprobs, result.next_logprobs)
    kl[np.isnan(kl) & ~np.isnan(scores)] = 0.0
    return OcclusionResult(scores, kl, base.logprob, {"mode": "mask", "mask_token_id": replacement})
