"""The in-process scorer: a causal LM scores continuations in batches, with the next-token distribution."""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch

from attnscope.attribution.scorers import Scored
from attnscope.attribution.targets import require_causal
from attnscope.capture import scoring
from attnscope.capture.tokens import tokenize
from attnscope.errors import InputError
from attnscope.models.loaded import LoadedModel
from attnscope.progress import Progress, report

SCORE_BATCH = 8  # sequences per forward pass
SHARE_PREFIX_MIN_TOKENS = 128  # from this length on, occluded texts reuse the original's key/value cache


class ModelScorer:
    """Scores with an in-process causal LM (batched), with the full next-token distribution."""

    targets = "any continuation text or token ids (in-process, with the next-token distribution for KL)"

    def __init__(self, model: LoadedModel) -> None:
        require_causal(model, "occlusion with a model scorer")
        self.model = model

    def score(self, prompts: Sequence[str], continuation: str, progress: Progress | None = None) -> list[Scored]:
        """``continuation`` after each prompt, tokenized together with it (as an HTTP endpoint does)."""
        sequences, starts = [], []
        for prompt in prompts:
            tokens = tokenize(self.model.tokenizer, prompt + continuation)
            first = next(
                (i for i, t in enumerate(tokens) if t.end is not None and t.end > len(prompt) and t.start is not None),
                len(tokens),
            )
            ids = [t.id for t in tokens]
            if first == 0 and not prompt:  # nothing left before the continuation: start from the document start
                ids, first = [self.document_start(), *ids], 1
            if first == 0 or first >= len(ids):
                raise InputError("cannot score: the continuation merges into the start of the prompt or is empty")
            self.model.check_length(len(ids), "an occluded text with its target")
            sequences.append(ids)
            starts.append(first)
        # long sequences: reusing the shared prefix saves about half the work; short ones gain more from batching
        if len(sequences) > 1 and len(sequences[0]) >= SHARE_PREFIX_MIN_TOKENS and self._can_share_prefix():
            return self.score_ids_sharing_prefix(sequences, starts, progress)
        return self.score_ids(sequences, starts, progress)

    def document_start(self) -> int:
        """The token a text starts after when nothing precedes it: BOS, or EOS for tokenizers without
        one (GPT-2, Qwen and SmolLM2 separate documents with it)."""
        tokenizer = self.model.tokenizer
        for token in (tokenizer.bos_token_id, tokenizer.eos_token_id):
            if token is not None:
                return int(token)
        raise InputError("cannot score after an empty prompt: the tokenizer has no BOS or EOS token")

    def _can_share_prefix(self) -> bool:
        """Full-attention decoders only (a sliding-window cache cannot be cut back to a prefix)."""
        return self.model.arch.sliding_window is None and all(
            kind == "full_attention" for kind in (self.model.arch.layer_types or [])
        )

    def _scored(self, hidden: torch.Tensor, sequence: list[int], start: int, offset: int) -> Scored:
        """The continuation ``sequence[start:]`` scored from (tokens - offset, hidden) states."""
        positions = torch.arange(start - 1 - offset, len(sequence) - 1 - offset, device=hidden.device)
        logprobs = scoring.log_probs(self.model, hidden[positions])  # (continuation, vocab)
        value = float(scoring.picked(logprobs, sequence[start:]).sum())
        return Scored(value, logprobs[0].cpu())

    def score_ids_sharing_prefix(
        self, sequences: Sequence[list[int]], starts: Sequence[int], progress: Progress | None = None
    ) -> list[Scored]:
        """Like :meth:`score_ids`; the first sequence's key/value cache is reused for the tokens
        every other sequence shares with it at its start (occluding a unit leaves the text before
        it unchanged), so only the rest of each sequence runs: about half the work on average."""
        device = scoring.device_of(self.model)
        reference = sequences[0]
        results: list[Scored] = []
        with self.model.lock, torch.inference_mode():
            hidden_reference, cache = scoring.cache_of(self.model, torch.tensor([reference], device=device))
            for index, (sequence, start) in enumerate(zip(sequences, starts, strict=True)):
                report(progress, index, len(sequences), "scoring")
                shared = 0
                limit = min(len(sequence), len(reference), start - 1)  # rows from start - 1 on are needed
                while shared < limit and sequence[shared] == reference[shared]:
                    shared += 1
                if sequence is reference:
                    hidden, offset = hidden_reference[0], 0
                elif shared == 0:
                    hidden, _ = scoring.hidden_states(self.model, input_ids=torch.tensor([sequence], device=device))
                    hidden, offset = hidden[0], 0
                else:
                    past = copy.deepcopy(cache)
                    past.crop(shared - len(reference))  # keep the first `shared` positions
                    rest = torch.tensor([sequence[shared:]], device=device)
                    hidden, _ = scoring.hidden_states(self.model, input_ids=rest, cache=past)
                    hidden, offset = hidden[0], shared
                results.append(self._scored(hidden, sequence, start, offset))
        report(progress, len(sequences), len(sequences), "scoring")
        return results

    def score_token_ids(
        self, prompts: Sequence[str], continuation: list[int], progress: Progress | None = None
    ) -> list[Scored]:
        """``continuation`` token ids scored after each prompt (tokenized on its own)."""
        sequences = [
            [t.id for t in tokenize(self.model.tokenizer, prompt)] or [self.document_start()] for prompt in prompts
        ]
        return self.score_ids([s + list(continuation) for s in sequences], [len(s) for s in sequences], progress)

    def score_ids(
        self, sequences: Sequence[list[int]], starts: Sequence[int], progress: Progress | None = None
    ) -> list[Scored]:
        """Tokens ``sequence[start:]`` scored given ``sequence[:start]``, for each sequence."""
        device = scoring.device_of(self.model)
        results: list[Scored] = []
        with self.model.lock, torch.inference_mode():
            for begin in range(0, len(sequences), SCORE_BATCH):
                report(progress, begin, len(sequences), "scoring")
                batch, batch_starts = sequences[begin : begin + SCORE_BATCH], starts[begin : begin + SCORE_BATCH]
                width = max(len(s) for s in batch)
                ids = torch.zeros((len(batch), width), dtype=torch.long, device=device)
                mask = torch.zeros((len(batch), width), dtype=torch.long, device=device)
                for row, sequence in enumerate(batch):  # right padding: positions stay 0..n-1
                    ids[row, : len(sequence)] = torch.tensor(sequence, device=device)
                    mask[row, : len(sequence)] = 1
                hidden, _ = scoring.hidden_states(self.model, input_ids=ids, attention_mask=mask)
                for row, (sequence, start) in enumerate(zip(batch, batch_starts, strict=True)):
                    results.append(self._scored(hidden[row], sequence, start, 0))
        report(progress, len(sequences), len(sequences), "scoring")
        return results
