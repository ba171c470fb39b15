"""Units of text above tokens — words, sentences, paragraphs — rebuilt from character offsets.

Every token is assigned to exactly one unit, so scores aggregated over units keep their total:

- ``token``: every token is its own unit (special tokens included).
- ``word``: Chinese (Han) runs are segmented by jieba; other text by ``\\w+`` runs (with inner
  apostrophes/hyphens) and single punctuation marks.
- ``sentence``: up to and including ``.!?。！？…;；`` (plus closing quotes/brackets) or a line break.
- ``paragraph``: separated by blank lines.

A token belongs to the unit it overlaps most. Tokens covering only whitespace, and the empty-span
tails of characters split over several byte pieces, join the unit of the token before them (the
next one at the very start). Special tokens inserted by the tokenizer (``start is None``) stay
units of their own, marked ``special``.

Aggregation rules (documented contract): a token-importance vector is **summed** within a unit; an
attention map is **summed over key tokens** of a key unit and **averaged over query tokens** of a
query unit, so every aggregated row still sums to the original row sums.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal

import numpy as np

from attnscope.capture.tokens import Token
from attnscope.errors import InputError

Granularity = Literal["token", "word", "sentence", "paragraph"]
GRANULARITIES: tuple[str, ...] = ("token", "word", "sentence", "paragraph")

_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002fa1f]+")
_WORD = re.compile(r"\w+(?:['’\-]\w+)*|[^\w\s]", re.UNICODE)
_SENTENCE_END = re.compile(r"(?:[.!?。！？…;；]+[\"'”’)\]）」』]*)|\n")
_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n\s*")


@dataclass(frozen=True)
class Unit:
    text: str
    start: int | None  # character offsets into the text; None for an inserted special token
    end: int | None
    tokens: tuple[int, ...]  # token indexes assigned to this unit
    special: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "start": self.start, "end": self.end}


@cache
def _jieba() -> Any:
    import jieba

    jieba.setLogLevel(logging.WARNING)
    return jieba.Tokenizer()


def _word_spans(text: str) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    position = 0
    for han in _HAN.finditer(text):
        spans += [(m.start() + position, m.end() + position) for m in _WORD.finditer(text[position : han.start()])]
        spans += [(han.start() + s, han.start() + e) for _, s, e in _jieba().tokenize(han.group(), HMM=True)]
        position = han.end()
    spans += [(m.start() + position, m.end() + position) for m in _WORD.finditer(text[position:])]
    return spans


def _split_spans(text: str, breaks: re.Pattern[str]) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    start = 0
    for match in breaks.finditer(text):
        end = match.end()
        if text[start:end].strip():
            spans.append((start, end))
            start = end
    if text[start:].strip():
        spans.append((start, len(text)))
    # trim surrounding whitespace, so units start and end on visible characters
    trimmed = []
    for begin, end in spans:
        piece = text[begin:end]
        left = len(piece) - len(piece.lstrip())
        right = len(piece.rstrip())
        trimmed.append((begin + left, begin + right))
    return trimmed


def text_spans(text: str, granularity: Granularity) -> list[tuple[int, int]]:
    """Character spans of the words, sentences or paragraphs of ``text``, in order, not overlapping."""
    if granularity == "word":
        return _word_spans(text)
    if granularity == "sentence":
        return _split_spans(text, _SENTENCE_END)
    if granularity == "paragraph":
        return _split_spans(text, _PARAGRAPH_BREAK)
    raise InputError(f"unknown granularity {granularity!r}; use one of {', '.join(GRANULARITIES)}")


def make_units(text: str, tokens: Sequence[Token], granularity: Granularity = "token") -> list[Unit]:
    """Units of ``granularity`` over ``tokens`` of ``text`` (see the module docstring)."""
    if granularity == "token":
        return [Unit(t.text, t.start, t.end, (t.index,), t.special and t.start is None) for t in tokens]
    spans = text_spans(text, granularity)
    starts = np.array([s for s, _ in spans], dtype=np.int64)
    owner: list[int | None] = []  # span index per token; None for inserted specials
    for token in tokens:
        if token.start is None or token.end is None:
            owner.append(None)
            continue
        best, overlap = -1, 0
        if spans and token.end > token.start:
            first = max(0, int(np.searchsorted(starts, token.start, side="right")) - 1)
            for index in range(first, len(spans)):
                begin, end = spans[index]
                if begin >= token.end:
                    break
                shared = min(end, token.end) - max(begin, token.start)
                if shared > overlap:
                    best, overlap = index, shared
        owner.append(best if overlap > 0 else -1)  # -1: whitespace only or an empty tail
    # whitespace-only tokens and empty tails join the unit before them (or after, at the start)
    previous: int | None = None
    for position, value in enumerate(owner):
        if value == -1:
            owner[position] = previous
        elif value is not None:
            previous = value
    following: int | None = None
    for position in range(len(owner) - 1, -1, -1):
        value = owner[position]
        if value == -1 or (value is None and tokens[position].start is not None):
            owner[position] = following
        elif value is not None:
            following = value

    units: list[Unit] = []
    members: dict[int, list[int]] = {}
    order: list[tuple[str, int]] = []  # ("span", index) or ("special", token index), in token order
    for token, value in zip(tokens, owner, strict=True):
        if value is None:
            order.append(("special", token.index))
        else:
            if value not in members:
                members[value] = []
                order.append(("span", value))
            members[value].append(token.index)
    by_index = {t.index: t for t in tokens}
    for kind, index in order:
        if kind == "special":
            token = by_index[index]
            units.append(Unit(token.text, None, None, (index,), True))
        else:
            begin, end = spans[index]
            units.append(Unit(text[begin:end], begin, end, tuple(members[index])))
    return units


def membership(units: Sequence[Unit], n_tokens: int) -> np.ndarray:
    """(units, tokens) 0/1 matrix: which unit each token belongs to."""
    matrix = np.zeros((len(units), n_tokens), dtype=np.float64)
    for row, unit in enumerate(units):
        matrix[row, list(unit.tokens)] = 1.0
    return matrix


def aggregate_scores(scores: np.ndarray, units: Sequence[Unit]) -> np.ndarray:
    """(units,) sums of a (tokens,) score vector (NaN scores count as 0)."""
    values = np.nan_to_num(np.asarray(scores, dtype=np.float64))
    return membership(units, len(values)) @ values


def aggregate_map(matrix: np.ndarray, query_units: Sequence[Unit], key_units: Sequence[Unit]) -> np.ndarray:
    """(query units, key units) map from a (..., query, key) map: sum over keys, mean over queries."""
    values = np.asarray(matrix, dtype=np.float64)
    keys = membership(key_units, values.shape[-1])  # (key units, key)
    queries = membership(query_units, values.shape[-2])
    queries /= np.maximum(queries.sum(axis=-1, keepdims=True), 1.0)
    return queries @ values @ keys.T
