"""Whole words in text of any script: what rules' ``{text: ...}`` spans, counterfactual edits and bias
suites' terms match.

A match is a whole word when it neither begins nor ends inside a run of word characters — letters,
digits and ``_`` of a script written with spaces between words (Latin, Cyrillic, Greek, Arabic,
Hangul, …): ``he`` is not found in ``The``. Scripts written without spaces (Han, kana, Thai, Lao,
Myanmar, Khmer) have no word boundary a character can show, so a term in them matches anywhere
(``护士`` in ``这位护士说``). ``joiners`` adds characters that join words for one caller (a bias suite's
names: ``Jean-Luc``, ``O'Neil``).
"""

from __future__ import annotations

import re

UNSPACED = re.compile(
    r"[\u0e00-\u0eff\u1000-\u109f\u1780-\u17ff\u2e80-\u2fdf\u3040-\u30ff\u3100-\u312f\u3190-\u31ff"
    r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff66-\uff9f\U00020000-\U0003134f]"
)


def word_char(char: str, joiners: str = "") -> bool:
    """A character that continues a word of a spaced script (see the module docstring)."""
    return (char.isalnum() or char == "_" or char in joiners) and not UNSPACED.match(char)


def whole_word(text: str, start: int, end: int, joiners: str = "") -> bool:
    """Whether ``text[start:end]`` neither begins nor ends inside a word of a spaced script."""

    def joined(at: int) -> bool:  # the characters on both sides of position ``at`` continue one word
        return 0 < at < len(text) and word_char(text[at - 1], joiners) and word_char(text[at], joiners)

    return not joined(start) and not joined(end)


def find_words(text: str, word: str, joiners: str = "") -> list[int]:
    """Where ``word`` starts in ``text`` as a whole word, left to right, without overlaps."""
    found: list[int] = []
    begin = text.find(word) if word else -1
    while begin >= 0:
        end = begin + len(word)
        if whole_word(text, begin, end, joiners):
            found.append(begin)
            begin = text.find(word, end)
        else:
            begin = text.find(word, begin + 1)
    return found
