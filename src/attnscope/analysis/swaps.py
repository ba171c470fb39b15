"""Identity-term swaps for counterfactuals (``--swap gender``): the tables of paired terms, and the
replace edits that swap every term of a table found in a text (:func:`swap_edits`)."""

from __future__ import annotations

import re

from attnscope.analysis.edits import Edit
from attnscope.errors import InputError

# identity-term pairs per table, each swapped both ways; a term two pairs name takes the counterpart
# SWAP_CHOICES gives it (the order of the pairs decides nothing)
SWAP_TABLES: dict[str, tuple[tuple[str, str], ...]] = {
    "gender": (
        ("he", "she"),
        ("him", "her"),
        ("his", "her"),
        ("himself", "herself"),
        ("man", "woman"),
        ("men", "women"),
        ("boy", "girl"),
        ("boys", "girls"),
        ("father", "mother"),
        ("fathers", "mothers"),
        ("son", "daughter"),
        ("sons", "daughters"),
        ("brother", "sister"),
        ("brothers", "sisters"),
        ("husband", "wife"),
        ("king", "queen"),
        ("mr", "mrs"),
        ("male", "female"),
        ("他", "她"),
        ("男人", "女人"),
        ("男孩", "女孩"),
        ("男性", "女性"),
        ("父亲", "母亲"),
        ("爸爸", "妈妈"),
        ("儿子", "女儿"),
        ("哥哥", "姐姐"),
        ("弟弟", "妹妹"),
        ("丈夫", "妻子"),
        ("先生", "女士"),
    ),
}
# the counterpart of each term that two pairs of a table name: "her" is possessive ("her book" →
# "his book") or objective ("saw her" → "saw him"); without parsing, it is read as possessive
SWAP_CHOICES: dict[str, dict[str, str]] = {"gender": {"her": "his"}}


def swap_edits(text: str, table: str = "gender") -> list[Edit]:
    """One replace edit per identity term of ``table`` found in ``text`` (whole words for terms in
    Latin letters, with the capitalisation kept; every occurrence for CJK terms)."""
    counterpart = swap_counterparts(table)
    terms = sorted(counterpart, key=len, reverse=True)  # longest first: 男人 before 男
    alternatives = [
        rf"(?<![A-Za-z]){re.escape(term)}(?![A-Za-z])" if term.isascii() else re.escape(term) for term in terms
    ]
    pattern = re.compile("|".join(alternatives), re.IGNORECASE)
    edits = []
    for match in pattern.finditer(text):
        found = match.group()
        edits.append(Edit("replace", found, _cased(counterpart[found.lower()], found), start=match.start()))
    if not edits:
        raise InputError(f"no term of the {table} swap table occurs in the text")
    return edits


def swap_counterparts(table: str = "gender") -> dict[str, str]:
    """Each term of the swap table ``table`` (lower case) and the term it becomes: both sides of
    every pair, a term named by two pairs as :data:`SWAP_CHOICES` says (``her`` → ``his``)."""
    name = table.strip().lower()
    pairs = SWAP_TABLES.get(name)
    if pairs is None:
        raise InputError(f"unknown swap table {table!r}; tables: {', '.join(sorted(SWAP_TABLES))}")
    chosen = SWAP_CHOICES.get(name, {})
    named: dict[str, set[str]] = {}
    for left, right in pairs:
        named.setdefault(left, set()).add(right)
        named.setdefault(right, set()).add(left)
    counterpart = {}
    for term, others in named.items():
        if len(others) > 1 and chosen.get(term) not in others:
            raise ValueError(f"swap table {name}: {term!r} has counterparts {sorted(others)}; choose one")
        counterpart[term] = chosen[term] if len(others) > 1 else next(iter(others))
    return counterpart


def _cased(word: str, like: str) -> str:
    if like.isupper() and len(like) > 1:
        return word.upper()
    if like[:1].isupper():
        return word[:1].upper() + word[1:]
    return word
