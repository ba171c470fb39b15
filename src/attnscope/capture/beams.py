"""Beam search as a tree: every running beam after every step, recorded while ``model.generate`` runs.

What transformers' ``_beam_search`` (5.x) does per step, and where the recording looks:

1. one forward over the K running rows; a forward hook keeps ``log_softmax`` of the last logits,
   ``(K, vocab)`` in float32: the raw distribution. The logits processors are handed these
   log-probs, but ours runs after the model's own processors, so the raw values come from the hook.
2. the logits processors: ours sees the K running rows ``(K, L)``; after step 0 they are the rows
   kept after the step before, in HF's order, and they close that step (each row's rank).
3. the top ``(1 + eos ids, at least 2) x K`` continuations by cumulative processed score, best
   first, go through the stopping criteria ``(C, L + 1)``: ours finds each one's parent row (one
   vectorised comparison with the running rows) and its raw log-prob.
4. the running rows of the next step are the K best continuations that hit no stopping criterion
   (if fewer than K, stopped ones fill up); stopped ones among the first K become finished hypotheses.

No processor runs after the last step: its running rows are worked out as in 4., the stops being the
EOS ids, the length limit and the stop strings (HF's own ``StopStringCriteria``). Only the current
step's ``(K, vocab)`` log-probs and rows are kept, never steps x vocab.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from attnscope.capture.decoding import Settings
from attnscope.capture.predictions import decode_ids
from attnscope.capture.trace import BeamNode
from attnscope.errors import UnsupportedError


@dataclass
class _Candidates:
    """One step's continuations, best first (C of them)."""

    rows: torch.Tensor  # (C, L + 1) running prefix + the new token
    parent: torch.Tensor  # (C,) row of the running beam each continues
    token: torch.Tensor  # (C,)
    logprob: torch.Tensor  # (C,) raw log-prob of the token given the parent's prefix
    cum: torch.Tensor  # (C,) raw cumulative log-prob


def _match(rows: torch.Tensor, among: torch.Tensor, start: int) -> torch.Tensor:
    """For each row of ``rows`` (R, L), the first row of ``among`` (C, L) equal to it from ``start`` on: (R,)."""
    same = (rows[:, None, start:] == among[None, :, start:]).all(dim=-1)  # (R, C)
    if not bool(same.any(dim=1).all()):
        raise UnsupportedError("beam search: a running beam matches none of the step's continuations")
    return same.to(torch.int8).argmax(dim=1)


class _Processor:
    """The logits processor: hands the scores on unchanged."""

    def __init__(self, recorder: BeamRecorder) -> None:
        self.recorder = recorder

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        self.recorder.guarded(self.recorder.running, input_ids)
        return scores


class _Criterion:
    """The stopping criterion: stops nothing."""

    def __init__(self, recorder: BeamRecorder) -> None:
        self.recorder = recorder

    def __call__(self, input_ids: torch.Tensor, scores: Any, **_: Any) -> torch.Tensor:
        self.recorder.guarded(self.recorder.continuations, input_ids)
        return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)


class BeamRecorder:
    """Records a beam search's tree; pass :meth:`generate_kwargs` to ``model.generate`` and
    :meth:`keep_logprobs` as a forward hook of the model, then call :meth:`finish`."""

    def __init__(self, settings: Settings, eos_ids: set[int], tokenizer: Any) -> None:
        self.num_beams, self.max_new_tokens = settings.num_beams, settings.max_new_tokens
        self.eos_ids, self.stop, self.tokenizer = sorted(eos_ids), list(settings.stop), tokenizer
        self.start = 0  # length of the rows at step 0 (the prompt, or the decoder's start token)
        self.rows: torch.Tensor | None = None  # (K, L) the running rows the current step extends
        self.logprobs: torch.Tensor | None = None  # (K, vocab) raw log-probs of the current step
        self.cum: torch.Tensor | None = None  # (K,) raw cumulative log-probs of the running rows
        self.pending: _Candidates | None = None  # the current step's continuations
        self.levels: list[list[BeamNode]] = []
        self.lost: str | None = None  # why the tree could not be followed (then there is none)

    def guarded(self, record: Any, rows: torch.Tensor) -> None:
        """``record(rows)`` unless the tree is lost: a beam search this recording does not follow
        loses its tree, never the generation."""
        if self.lost is None:
            try:
                record(rows)
            except UnsupportedError as error:
                self.lost = str(error)

    def generate_kwargs(self) -> dict[str, Any]:
        from transformers import LogitsProcessorList, StoppingCriteriaList

        return {
            "logits_processor": LogitsProcessorList([_Processor(self)]),
            "stopping_criteria": StoppingCriteriaList([_Criterion(self)]),
        }

    def keep_logprobs(self, _module: Any, _args: Any, output: Any) -> None:
        self.logprobs = torch.log_softmax(output.logits[:, -1].to(torch.float32), dim=-1)

    def running(self, rows: torch.Tensor) -> None:
        """The K running rows (K, L) at the start of a step: they close the step before."""
        if self.pending is None:  # step 0: K copies of the prompt
            self.start = rows.shape[1]
            self.cum = torch.zeros(rows.shape[0], dtype=torch.float32, device=rows.device)
        else:
            self._close(_match(rows, self.pending.rows, self.start), None)
        self.rows = rows.clone()

    def continuations(self, rows: torch.Tensor) -> None:
        """The step's continuations (C, L + 1), best first."""
        assert self.rows is not None and self.logprobs is not None and self.cum is not None
        parent = _match(rows[:, :-1], self.rows, self.start)
        token = rows[:, -1]
        logprob = self.logprobs[parent, token]
        self.pending = _Candidates(rows.clone(), parent, token, logprob, self.cum[parent] + logprob)
        self.logprobs = None

    def _close(self, kept: torch.Tensor, ended: list[bool] | None) -> None:
        """The step's nodes: the kept continuations (K,) in rank order, then the first K that were
        not kept (finished hypotheses). ``ended``: per continuation, whether its token ended it
        (the last step; before it, whether a continuation was kept says so)."""
        pending = self.pending
        assert pending is not None
        step = len(self.levels)
        parents, tokens = pending.parent.tolist(), pending.token.tolist()
        logprobs, cums = pending.logprob.tolist(), pending.cum.tolist()

        def node(rank: int, index: int, finished: bool) -> BeamNode:
            parent = None if step == 0 else parents[index]
            return BeamNode(step, rank, tokens[index], parent, logprobs[index], cums[index], False, finished)

        order = kept.tolist()
        nodes = [node(rank, index, bool(ended and ended[index])) for rank, index in enumerate(order)]
        left = [index for index in range(min(self.num_beams, len(tokens))) if index not in order]
        nodes += [node(len(order) + number, index, True) for number, index in enumerate(left)]
        self.levels.append(nodes)
        self.cum = pending.cum[kept]
        self.pending = None

    def _last_step(self) -> None:
        """The last step's running rows as HF picks them: the best that hit no stop, then stopped ones."""
        pending = self.pending
        assert pending is not None
        ended = torch.isin(pending.token, pending.token.new_tensor(self.eos_ids))
        if self.stop:
            from transformers import StopStringCriteria

            ended |= StopStringCriteria(tokenizer=self.tokenizer, stop_strings=self.stop)(pending.rows, None)
        at_limit = pending.rows.shape[1] - self.start >= self.max_new_tokens  # the length limit stops all
        stopped = torch.ones_like(ended) if at_limit else ended
        order = torch.argsort(stopped.to(torch.int8), stable=True)  # not stopped first, each in HF's order
        self._close(order[: self.num_beams], ended.tolist())

    def finish(self, new_ids: list[int]) -> list[list[BeamNode]]:
        """The tree, the returned sequence ``new_ids`` marked ``best``, each token's text filled in;
        empty when the recording lost the beams (:attr:`lost` says why)."""
        if self.lost is not None:
            return []
        if self.pending is not None:
            self._last_step()
        best: set[tuple[int, int]] = set()  # (step, rank)
        previous: int | None = None
        for step, token in enumerate(new_ids):
            level = self.levels[step] if step < len(self.levels) else []
            found = [n for n in level if n.token_id == token and n.parent == previous]
            if len(found) != 1:
                self.lost = f"beam search: the returned sequence left the recorded beams at step {step}"
                return []
            best.add((step, found[0].rank))
            previous = found[0].rank
        ids = np.array([n.token_id for level in self.levels for n in level], dtype=np.int64)
        texts = decode_ids(self.tokenizer, ids) if ids.size else {}
        return [
            [replace(n, best=(n.step, n.rank) in best, text=texts[n.token_id]) for n in level] for level in self.levels
        ]
