"""Units of text above tokens — words, sentences, paragraphs — rebuilt from character offsets.

Every token is assigned to exactly one unit, so scores aggregated over units keep their total:

- ``token``: every token is its own unit (special tokens included).
- ``word``: Chinese (Han) runs are segmented by jieba; other text by ``\\w+`` runs (with inner
  apostrophes/hyphens) and single punctuation marks.
- ``sentence``: up to and including ``.!?。！？…;；`` (plus closing quotes/brackets) or a line break.
- ``paragraph``: separated by blank lines.

Every word (sentence, paragraph) of the text belongs to exactly one unit, and every token too:
when a token spans several words (Qwen's ``他的`` covers jieba's ``他`` and ``的``), those words are
merged into one unit, so neither is lost. Tokens covering only whitespace, and the empty-span tails
of characters split over several byte pieces, join the unit of the token before them (the next one
at the very start). Special tokens inserted by the tokenizer (``start is None``) stay units of
their own, marked ``special``. Without tokens (black-box scorers) units come from the text alone.

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


def make_units(text: str, tokens: Sequence[Token] | None, granularity: Granularity = "token") -> list[Unit]:
    """Units of ``granularity`` over ``tokens`` of ``text`` (see the module docstring); with
    ``tokens=None`` the units of the text alone (no token units, empty ``tokens`` fields)."""
    if granularity not in GRANULARITIES:
        raise InputError(f"unknown granularity {granularity!r}; use one of {', '.join(GRANULARITIES)}")
    if tokens is None:
        if granularity == "token":
            raise InputError("token units need the model's tokenizer; use word, sentence or paragraph units")
        return [Unit(text[b:e], b, e, ()) for b, e in text_spans(text, granularity)]
    if granularity == "token":
        return [Unit(t.text, t.start, t.end, (t.index,), t.special and t.start is None) for t in tokens]
    spans = text_spans(text, granularity)
    starts = np.array([s for s, _ in spans], dtype=np.int64)
    group = list(range(len(spans)))  # union-find over spans that one token covers together

    def root(index: int) -> int:
        while group[index] != index:
            group[index] = group[group[index]]
            index = group[index]
        return index

    owner: list[int | None] = []  # a span index per token; None for inserted specials, -1 for none
    for token in tokens:
        if token.start is None or token.end is None:
            owner.append(None)
            continue
        touched: list[int] = []
        if spans and token.end > token.start:
            first = max(0, int(np.searchsorted(starts, token.start, side="right")) - 1)
            for index in range(first, len(spans)):
                begin, end = spans[index]
                if begin >= token.end:
                    break
                if min(end, token.end) > max(begin, token.start):
                    touched.append(index)
        for index in touched[1:]:
            group[root(index)] = root(touched[0])
        owner.append(touched[0] if touched else -1)
    _attach_whitespace(tokens, owner)

    members: dict[int, list[int]] = {}
    for token, value in zip(tokens, owner, strict=True):
        if value is not None and value >= 0:
            members.setdefault(root(value), []).append(token.index)
    extent: dict[int, tuple[int, int]] = {}
    for index, (begin, end) in enumerate(spans):
        top = root(index)
        low, high = extent.get(top, (begin, end))
        extent[top] = (min(low, begin), max(high, end))
    units: list[Unit] = []
    placed: set[int] = set()
    by_index = {t.index: t for t in tokens}
    cursor = 0  # spans no token covers are placed in text order between the others
    ordered = sorted(extent, key=lambda top: extent[top][0])
    for token, value in zip(tokens, owner, strict=True):
        if value is None:
            units.append(Unit(by_index[token.index].text, None, None, (token.index,), True))
            continue
        if value < 0:  # a text of whitespace only: the token is its own unit
            units.append(Unit(token.text, token.start, token.end, (token.index,)))
            continue
        top = root(value)
        if top in placed:
            continue
        while cursor < len(ordered) and extent[ordered[cursor]][0] < extent[top][0]:
            loose = ordered[cursor]
            if loose not in placed and loose not in members:
                units.append(_span_unit(text, extent[loose], ()))
                placed.add(loose)
            cursor += 1
        units.append(_span_unit(text, extent[top], tuple(members[top])))
        placed.add(top)
    units += [_span_unit(text, extent[top], ()) for top in ordered if top not in placed]
    return units


def _span_unit(text: str, span: tuple[int, int], members: tuple[int, ...]) -> Unit:
    return Unit(text[span[0] : span[1]], span[0], span[1], members)


def _attach_whitespace(tokens: Sequence[Token], owner: list[int | None]) -> None:
    """Tokens with no span of their own (whitespace, empty tails) join the unit before them (or after
    them at the very start), in place."""
    previous: int | None = None
    for position, value in enumerate(owner):
        if value == -1:
            owner[position] = previous if previous is not None else -1
        elif value is not None:
            previous = value
    following: int | None = None
    for position in range(len(owner) - 1, -1, -1):
        value = owner[position]
        if value == -1 or (value is None and tokens[position].start is not None):
            owner[position] = following if following is not None else -1
        elif value is not None:
            following = value


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
