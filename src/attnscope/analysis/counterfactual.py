"""Counterfactual differences: two texts' tokens aligned by characters, and what changed between them.

The edited text comes with a character map (:class:`attnscope.analysis.edits.EditedText`): every
edited character is an original character or new. Tokens are aligned through it
(:func:`align_by_characters`): an edited token and an original token are partners when they cover
the same original characters and have the same id. So tokens are compared where they are the same
token of the same text — not merely equal pieces found by ``difflib`` — and tokens the edit touched,
or that the tokenizer split differently around it, are listed on each side without a partner.

- Special tokens the tokenizer inserts (BOS, [CLS], ...) have no characters; the k-th of each id
  on one side is the partner of the k-th of that id on the other.
- Byte pieces of a character split across tokens have an empty span at the character's end; the
  k-th such piece after a character is the partner of the k-th piece after the same original
  character, with the same id.

What the differences are (edited minus original throughout, on matched tokens only):

- :func:`row_shift`: the query row's weight on each matched key, before and after.
- :func:`head_shift`: for every layer x head, the query rows restricted to the matched keys and
  renormalised over them, and their **total variation distance** ``TVD = ½ Σ_k |p̂_k − q̂_k|``
  (0: the head spreads its attention over the shared tokens as before; 1: on disjoint tokens);
  beside it the raw ``L1 = Σ_k |p_k − q_k|`` over matched keys and each row's mass on tokens without
  a partner. Heads are ranked by TVD.
- :func:`score_shift`: attribution scores per matched token, their change, and the rank agreement
  (Spearman's ρ, Kendall's τ-b: :func:`attnscope.analysis.faithfulness.rank_agreement`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from attnscope.analysis.faithfulness import rank_agreement
from attnscope.capture.tokens import Token


@dataclass(frozen=True)
class TokenAlignment:
    pairs: list[tuple[int, int]]  # (original token, edited token), in order
    only_original: list[int]  # original tokens without a partner
    only_edited: list[int]

    def partner(self, original: int) -> int | None:
        return next((j for i, j in self.pairs if i == original), None)

    def to_json(self) -> dict[str, Any]:
        return {
            "pairs": [list(pair) for pair in self.pairs],
            "only_original": self.only_original,
            "only_counterfactual": self.only_edited,
        }


def _keys(tokens: Sequence[Token], spans: Sequence[tuple[int, int] | None]) -> list[tuple[Any, ...] | None]:
    """A key per token from its span in original characters (None: no original span)."""
    seen: Counter[tuple[Any, ...]] = Counter()
    keys: list[tuple[Any, ...] | None] = []
    for token, span in zip(tokens, spans, strict=True):
        if token.start is None:
            base: tuple[Any, ...] | None = ("special", token.id)
        elif span is None:
            base = None
        else:
            base = ("span", span[0], span[1], token.id)
        if base is None:
            keys.append(None)
            continue
        keys.append((*base, seen[base]))  # the k-th token with this key (byte pieces, repeated specials)
        seen[base] += 1
    return keys


def original_span(token: Token, char_map: Sequence[int | None]) -> tuple[int, int] | None:
    """The original characters ``[start, end)`` an edited token covers, or None when it covers new
    text or characters that were not next to each other in the original."""
    if token.start is None or token.end is None:
        return None
    if token.start == token.end:  # a later byte piece of the character before it
        if token.start == 0 or char_map[token.start - 1] is None:
            return None
        position = int(char_map[token.start - 1]) + 1  # type: ignore[arg-type]
        return position, position
    sources = char_map[token.start : token.end]
    if any(s is None for s in sources):
        return None
    first = int(sources[0])  # type: ignore[arg-type]
    if list(sources) != list(range(first, first + len(sources))):
        return None
    return first, first + len(sources)


def align_by_characters(
    original: Sequence[Token], edited: Sequence[Token], char_map: Sequence[int | None]
) -> TokenAlignment:
    """Pairs of tokens that are the same token of the same original characters (module docstring)."""
    identity = [None if t.start is None or t.end is None else (t.start, t.end) for t in original]
    keys_original = _keys(original, identity)
    keys_edited = _keys(edited, [original_span(t, char_map) for t in edited])
    where = {key: index for index, key in enumerate(keys_original) if key is not None}
    pairs: list[tuple[int, int]] = []
    for j, key in enumerate(keys_edited):
        i = where.get(key) if key is not None else None
        if i is not None and (not pairs or (i > pairs[-1][0] and j > pairs[-1][1])):
            pairs.append((i, j))
    matched_original, matched_edited = {i for i, _ in pairs}, {j for _, j in pairs}
    return TokenAlignment(
        pairs,
        [i for i in range(len(original)) if i not in matched_original],
        [j for j in range(len(edited)) if j not in matched_edited],
    )


def _columns(pairs: Sequence[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
    return (
        np.array([i for i, _ in pairs], dtype=np.int64),
        np.array([j for _, j in pairs], dtype=np.int64),
    )


def row_shift(
    row_original: np.ndarray, row_edited: np.ndarray, pairs: Sequence[tuple[int, int]]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(matched,) weights before, after, and after − before, for the matched keys of two rows."""
    keys_original, keys_edited = _columns(pairs)
    before = np.asarray(row_original, dtype=np.float64)[keys_original]
    after = np.asarray(row_edited, dtype=np.float64)[keys_edited]
    return before, after, after - before


@dataclass(frozen=True)
class HeadShift:
    """Per layer x head changes of the query row (NaN: a layer not captured, or no mass to compare)."""

    tvd: np.ndarray  # (layers, heads) total variation distance on matched keys, renormalised
    l1: np.ndarray  # (layers, heads) Σ |after − before| on matched keys, raw weights
    unmatched_original: np.ndarray  # (layers, heads) the original row's mass on keys without a partner
    unmatched_edited: np.ndarray  # (layers, heads) the edited row's mass on keys without a partner

    def ranked(self, top: int = 10) -> list[dict[str, Any]]:
        """The ``top`` heads whose attention changed most (largest TVD first)."""
        order = np.argsort(-np.nan_to_num(self.tvd, nan=-1.0), axis=None, kind="stable")
        found = []
        for flat in order[: max(0, top)]:
            layer, head = np.unravel_index(int(flat), self.tvd.shape)
            if np.isnan(self.tvd[layer, head]):
                break
            found.append(
                {
                    "layer": int(layer),
                    "head": int(head),
                    "tvd": float(self.tvd[layer, head]),
                    "l1": float(self.l1[layer, head]),
                    "unmatched_original": float(self.unmatched_original[layer, head]),
                    "unmatched_counterfactual": float(self.unmatched_edited[layer, head]),
                }
            )
        return found


def head_shift(rows_original: np.ndarray, rows_edited: np.ndarray, pairs: Sequence[tuple[int, int]]) -> HeadShift:
    """:class:`HeadShift` of two query rows per head: ``rows_*`` are (layers, heads, keys) arrays of
    each text's own keys (NaN rows for layers not captured)."""
    keys_original, keys_edited = _columns(pairs)
    before = np.asarray(rows_original, dtype=np.float64)
    after = np.asarray(rows_edited, dtype=np.float64)
    matched_before, matched_after = before[..., keys_original], after[..., keys_edited]
    mass_before, mass_after = matched_before.sum(axis=-1), matched_after.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        normal_before = matched_before / mass_before[..., None]
        normal_after = matched_after / mass_after[..., None]
        tvd = 0.5 * np.abs(normal_after - normal_before).sum(axis=-1)
    tvd = np.where((mass_before > 0) & (mass_after > 0), tvd, np.nan)
    l1 = np.abs(matched_after - matched_before).sum(axis=-1)
    return HeadShift(tvd, l1, before.sum(axis=-1) - mass_before, after.sum(axis=-1) - mass_after)


@dataclass(frozen=True)
class ScoreShift:
    before: np.ndarray  # (matched,) the original's score of each matched token
    after: np.ndarray  # (matched,) the edited text's score of its partner
    compared: np.ndarray  # (matched,) bool: the pairs the rank agreement compares
    spearman: float  # NaN where undefined (fewer than 3 tokens, constant scores)
    kendall: float

    @property
    def shift(self) -> np.ndarray:
        return self.after - self.before


def score_shift(
    scores_original: Sequence[float | None] | np.ndarray,
    scores_edited: Sequence[float | None] | np.ndarray,
    pairs: Sequence[tuple[int, int]],
    include: np.ndarray | None = None,
) -> ScoreShift:
    """Per-token scores of two texts on their matched tokens, and their rank agreement over the pairs
    ``include`` keeps (default all; missing scores — None or NaN — are left out)."""
    keys_original, keys_edited = _columns(pairs)
    before = np.array([np.nan if s is None else s for s in scores_original], dtype=np.float64)[keys_original]
    after = np.array([np.nan if s is None else s for s in scores_edited], dtype=np.float64)[keys_edited]
    keep = np.ones(len(pairs), dtype=bool) if include is None else np.asarray(include, dtype=bool)
    agreement = rank_agreement({"original": before, "edited": after}, include=keep)
    compared = keep & np.isfinite(before) & np.isfinite(after)
    return ScoreShift(before, after, compared, float(agreement.spearman[0, 1]), float(agreement.kendall[0, 1]))
