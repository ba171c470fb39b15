"""What a rule's selectors pick: token positions of a trace, and the character spans they matched.

A span of text selects the tokens whose characters overlap it (an empty-span tail of a character
split over byte pieces counts where its character is); special tokens inserted by the tokenizer have
no characters and are picked only by ``class: special`` or ``class: first``.

- ``text``: the literal, case-sensitively (``ignore_case: true`` to fold case), as **whole words**:
  a match may not begin or end inside a run of letters or digits, so ``he`` is not found in
  ``The``. Chinese and Japanese characters have no spaces between words, so a match that begins
  (ends) with a Han or kana character may begin (end) anywhere: ``头痛`` is found in ``服用后头痛``.
  ``occurrence``: ``all`` matches (default), the ``first`` or the ``last``.
- ``regex``: a regular expression of the ``regex`` package (Python's ``re`` syntax, plus Unicode
  properties such as ``\\p{Han}``) over the text (empty matches ignored); ``occurrence`` too. A user's
  pattern may backtrack for ever (``(a|aa)+$``): a search stops after :data:`REGEX_TIMEOUT_S` seconds,
  and the selector picks nothing, with a note saying so (the rule is not evaluated).
- ``lexicon``: every term of the named list, matched as ``text`` is.
- ``part`` / ``role``: the named parts of the text (chat turns are parts named by their role).
- ``answer``: in ``from``, the rows that predicted the generated tokens (step ``s``: query
  ``p_s − 1``), each its own step; in a trace that is not a generation, the last position, whose
  row predicts the next token. In ``to``: the generated tokens.
- ``steps: [A, B]``: steps A … B of a generation (inclusive, negative from the end): their query
  rows in ``from``, their tokens in ``to``.
- ``class`` (``to`` only): ``first`` (position 0, special or not: the usual attention sink),
  ``special`` tokens, ``pii`` (tokens overlapping the personal-data spans given), ``numbers``
  (runs of digits, with inner ``.`` or ``,``), ``punctuation`` (tokens whose visible characters
  are all Unicode punctuation). A class that no token has picks nothing, and says so: ``absent``
  (no attention can go there: :mod:`.rules` measures its mass and max as 0). Personal data that was
  not looked for (``pii_spans`` None) is not absent but unknown.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import regex

from attnscope.analysis.rule_types import Selector
from attnscope.analysis.words import whole_word
from attnscope.capture.tokens import Part, Token
from attnscope.capture.trace import GenerationTrace, Trace

_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
REGEX_TIMEOUT_S = 1.0  # the longest a rule's regex may search one text


@dataclass(frozen=True)
class Picked:
    """The tokens a selector picked: positions, character spans matched, and steps (generations)."""

    positions: np.ndarray  # (n,) int64 token positions, ascending
    spans: tuple[tuple[int, int], ...] = ()  # character ranges matched, in text order
    steps: tuple[int, ...] | None = None  # 'from' answer/steps: the step of each position
    note: str | None = None  # why nothing was picked
    absent: bool = False  # a 'to' class looked for that no token of this text has (its note says so)


@dataclass(frozen=True)
class Context:
    """What selectors are resolved against."""

    trace: Trace
    parts: Sequence[Part]
    pii_spans: Sequence[tuple[int, int]] | None  # None: not looked for (class pii cannot be resolved)
    lexicons: Mapping[str, Sequence[str]]


def find_text(text: str, term: str, *, ignore_case: bool = False) -> list[tuple[int, int]]:
    """Character spans of ``term`` in ``text`` as whole words (overlapping matches included)."""
    flags = re.IGNORECASE if ignore_case else 0
    found = (m.span(1) for m in re.finditer(f"(?=({re.escape(term)}))", text, flags))
    return [(start, end) for start, end in found if whole_word(text, start, end)]


def overlapping(tokens: Sequence[Token], spans: Sequence[tuple[int, int]]) -> np.ndarray:
    """(n,) positions of the tokens whose characters overlap any of ``spans``, ascending."""
    placed = [t for t in tokens if t.start is not None and t.end is not None]
    if not placed or not spans:
        return np.zeros(0, dtype=np.int64)
    index = np.array([t.index for t in placed], dtype=np.int64)
    starts = np.array([t.start for t in placed], dtype=np.int64)
    ends = np.maximum(
        np.array([t.end for t in placed], dtype=np.int64), starts + 1
    )  # an empty tail sits at its character
    chosen = np.zeros(len(placed), dtype=bool)
    for start, stop in spans:
        chosen |= (starts < stop) & (start < ends)
    return index[chosen]


def _choose(spans: list[tuple[int, int]], occurrence: str) -> list[tuple[int, int]]:
    spans = sorted(set(spans))
    if not spans or occurrence == "all":
        return spans
    return [spans[0]] if occurrence == "first" else [spans[-1]]


def _spans(selector: Selector, context: Context) -> tuple[list[tuple[int, int]], str | None]:
    text, kind, value = context.trace.text, selector.kind, selector.value
    if kind == "text":
        return find_text(text, value, ignore_case=selector.ignore_case), None
    if kind == "lexicon":
        terms = context.lexicons.get(value, ())
        return [span for term in terms for span in find_text(text, term, ignore_case=selector.ignore_case)], None
    if kind == "regex":
        spans, note = _regex_spans(value, text, selector.ignore_case)
        return spans, None if note is None else f"{selector.describe()}: {note}"
    named = [(p.start, p.end) for p in context.parts if p.name == value]
    if named:
        return named, None
    known = ", ".join(sorted({p.name for p in context.parts})) or "none"
    if kind == "role":
        return [], f"no chat turn of role {value!r} (turns: {known}; give the text as chat messages)"
    return [], f"no part named {value!r} (parts: {known})"


def _regex_spans(pattern: str, text: str, ignore_case: bool) -> tuple[list[tuple[int, int]], str | None]:
    """The non-empty matches of a rule's ``pattern`` in ``text`` within :data:`REGEX_TIMEOUT_S` (the
    search releases the GIL: other requests go on meanwhile), or none and why."""
    flags = regex.IGNORECASE if ignore_case else 0
    try:
        found = regex.finditer(pattern, text, flags, concurrent=True, timeout=REGEX_TIMEOUT_S)
        return [m.span() for m in found if m.end() > m.start()], None
    except TimeoutError:
        return [], f"the regex took longer than {REGEX_TIMEOUT_S:g} s on this text"
    except (regex.error, OverflowError, ValueError, RecursionError) as error:  # rules built without a file
        return [], f"the regex does not compile: {error}"


def _generation(trace: Trace, selector: Selector, side: str) -> Picked:
    if not isinstance(trace, GenerationTrace) or not trace.steps:
        if selector.kind == "answer" and side == "from":  # an analysis: the row that predicts what comes next
            return Picked(np.array([len(trace.tokens) - 1], dtype=np.int64))
        return Picked(np.zeros(0, dtype=np.int64), note=f"{selector.describe()}: this trace is not a generation")
    count = len(trace.steps)
    chosen = range(count)
    if selector.kind == "steps":
        first, last = selector.value
        for bound in (first, last):
            if not -count <= bound < count:
                return Picked(
                    np.zeros(0, dtype=np.int64), note=f"step {bound} out of range: the generation has {count} steps"
                )
        chosen = range(first % count, last % count + 1)
    steps = [trace.steps[s] for s in chosen]
    if side == "from":
        return Picked(np.array([s.position - 1 for s in steps], dtype=np.int64), steps=tuple(s.step for s in steps))
    positions = np.array([s.position for s in steps], dtype=np.int64)
    spans = [
        (t.start, t.end) for t in (trace.tokens[p] for p in positions) if t.start is not None and t.end is not None
    ]
    return Picked(positions, tuple(spans))


def _class(trace: Trace, value: str, pii_spans: Sequence[tuple[int, int]] | None) -> Picked:
    tokens = trace.tokens
    if value == "first":
        return Picked(np.array([0], dtype=np.int64))
    if value == "special":
        return Picked(np.array([t.index for t in tokens if t.special], dtype=np.int64))
    if value == "punctuation":
        marks = [
            t.index
            for t in tokens
            if not t.special and t.text.strip() and all(unicodedata.category(c).startswith("P") for c in t.text.strip())
        ]
        return Picked(np.array(marks, dtype=np.int64))
    if value == "pii":
        if pii_spans is None:
            return Picked(np.zeros(0, dtype=np.int64), note="class pii: no personal-data spans were looked for")
        spans = sorted((int(s), int(e)) for s, e in pii_spans)
    else:  # numbers
        spans = [m.span() for m in _NUMBER.finditer(trace.text)]
    return Picked(overlapping(tokens, spans), tuple(spans))


def pick(selector: Selector, context: Context, side: str) -> Picked:
    """The tokens ``selector`` picks in ``context`` (``side``: ``from`` or ``to``); a :class:`Picked`
    with no positions and a ``note`` when it picks nothing."""
    if selector.kind in ("answer", "steps"):
        picked = _generation(context.trace, selector, side)
    elif selector.kind == "class":
        picked = _class(context.trace, selector.value, context.pii_spans)
        if picked.positions.size == 0 and picked.note is None:
            picked = Picked(picked.positions, note=f"no tokens of class {selector.value} in this text", absent=True)
    else:
        spans, note = _spans(selector, context)
        spans = _choose(spans, selector.occurrence)
        picked = Picked(overlapping(context.trace.tokens, spans), tuple(spans), note=note)
    if picked.positions.size == 0 and picked.note is None:
        picked = Picked(
            picked.positions, picked.spans, picked.steps, f"{side} ({selector.describe()}) matches no token"
        )
    return picked
