"""Edits of a text for counterfactuals: replace, delete or insert a span, or swap identity terms.

An :class:`Edit` names what to change in the original text; :func:`apply_edits` resolves every edit
to character positions of the *original* (never of a text already edited), refuses edits that
overlap, applies them left to right and keeps the character map: for every character of the edited
text, the index of the original character it is (``None`` for new text). Tokens of the two texts
are then aligned by characters (:mod:`attnscope.analysis.counterfactual`).

- ``replace OLD → NEW``: OLD is matched literally (case-sensitive) and as a whole word: ``he`` is
  not found inside ``The`` (``words=False`` matches inside words too; text in scripts written
  without spaces — Chinese, Japanese, Thai — matches anywhere). Which occurrences: ``all``
  (default), ``first``, ``last`` or the n-th (1-based); ``start`` pins one occurrence by offset.
- ``delete SPAN``: a replace with ``""``; the rules engine's hint ``{"remove": SPAN}`` is one.
- ``insert TEXT at AT``: AT is a character offset (0 … len(text)), ``before:WORD`` or
  ``after:WORD`` (next to WORD's occurrences, chosen as for replace).
- ``swap`` (:func:`attnscope.analysis.swaps.swap_edits`): every identity term of a built-in table replaced by its
  counterpart at once (``he`` ↔ ``she``, ``他`` ↔ ``她``, …); English terms match whole words and
  keep their capitalisation. A term two pairs name takes the counterpart :data:`SWAP_CHOICES`
  gives it: ``her`` → ``his`` (possessive and objective ``her`` are one word; it is read as
  possessive), while ``his`` → ``her`` and ``him`` → ``her``.

The swapped text and the replaced spans map to ``None``: they are new characters.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from attnscope.analysis.words import find_words
from attnscope.errors import InputError

KINDS = ("replace", "delete", "insert")
OCCURRENCES = ("all", "first", "last")


@dataclass(frozen=True)
class Edit:
    """One change of the original text (see the module docstring)."""

    kind: str  # replace | delete | insert
    old: str = ""  # replace, delete: the text changed
    new: str = ""  # replace, insert: the new text
    at: int | str | None = None  # insert: an offset, "before:WORD" or "after:WORD"
    occurrence: str | int = "all"  # all | first | last | n (1-based)
    start: int | None = None  # replace, delete: only the occurrence at this offset
    words: bool = True  # match whole words only (False: anywhere, inside words too)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise InputError(f"unknown edit {self.kind!r}; edits: {', '.join(KINDS)}")
        if self.kind in ("replace", "delete") and not self.old:
            raise InputError(f"{self.kind}: the text to {self.kind} is empty")
        if self.kind == "delete" and self.new:
            raise InputError("delete: a deletion has no new text (use replace)")
        if self.kind == "replace" and self.old == self.new:
            raise InputError(f"replace {self.old!r} by itself changes nothing")
        if self.kind == "insert" and (not self.new or self.at is None):
            raise InputError("insert: give the text to insert and where (AT=TEXT)")
        if not isinstance(self.words, bool):
            raise InputError(f"an edit's words must be true or false; got {self.words!r}")
        object.__setattr__(self, "occurrence", parse_occurrence(self.occurrence))

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"kind": self.kind}
        if self.kind != "insert":
            data["old"] = self.old
        if self.kind != "delete":
            data["new"] = self.new
        if self.kind == "insert":
            data["at"] = self.at
        data["occurrence"] = self.occurrence
        if self.start is not None:
            data["start"] = self.start
        if not self.words:
            data["words"] = False
        return data

    def label(self) -> str:
        if self.kind == "insert":
            return f"insert {self.new!r} at {self.at}"
        if self.kind == "delete":
            return f"delete {self.old!r}"
        return f"replace {self.old!r} by {self.new!r}"


@dataclass(frozen=True)
class Change:
    """An edit resolved to original characters ``[start, end)``, and where its text lands."""

    start: int
    end: int  # == start for an insertion
    new: str
    edit: int  # index of the edit it comes from
    edited_start: int = 0  # its new text in the edited text: [edited_start, edited_start + len(new))

    def to_dict(self, original: str) -> dict[str, Any]:
        return {
            "start": self.start,
            "end": self.end,
            "old": original[self.start : self.end],
            "new": self.new,
            "edit": self.edit,
            "edited_start": self.edited_start,
            "edited_end": self.edited_start + len(self.new),
        }


@dataclass(frozen=True)
class EditedText:
    """The original, the edited text, the changes, and for every edited character its original
    character's index (``None``: new text)."""

    original: str
    text: str
    edits: tuple[Edit, ...]
    changes: tuple[Change, ...]
    char_map: tuple[int | None, ...]  # (len(text),)

    def original_to_edited(self) -> list[int | None]:
        """For every original character, its index in the edited text (``None``: changed)."""
        inverse: list[int | None] = [None] * len(self.original)
        for position, source in enumerate(self.char_map):
            if source is not None:
                inverse[source] = position
        return inverse

    def to_json(self) -> dict[str, Any]:
        return {
            "edits": [edit.to_dict() for edit in self.edits],
            "changes": [change.to_dict(self.original) for change in self.changes],
            "char_map": list(self.char_map),
        }


def parse_occurrence(value: object) -> str | int:
    """``all``, ``first``, ``last`` or a 1-based count (text forms accepted)."""
    if isinstance(value, str) and value.strip().lower() in OCCURRENCES:
        return value.strip().lower()
    text = str(value).strip()
    if isinstance(value, int | str) and not isinstance(value, bool) and text.isdigit() and int(text) >= 1:
        return int(text)
    raise InputError(f"occurrence must be all, first, last or a number from 1; got {value!r}")


def parse_replace(spec: str, *, occurrence: str | int = "all", words: bool = True) -> Edit:
    """``OLD=NEW`` (split at the first ``=``; NEW may be empty: a deletion)."""
    old, sep, new = spec.partition("=")
    if not sep:
        raise InputError(f"--replace needs OLD=NEW; got {spec!r}")
    if not old:
        raise InputError(f"--replace {spec!r}: OLD is empty")
    if not new:
        return Edit("delete", old, occurrence=occurrence, words=words)
    return Edit("replace", old, new, occurrence=occurrence, words=words)


def parse_insert(spec: str, *, occurrence: str | int = "all", words: bool = True) -> Edit:
    """``AT=TEXT``: AT an offset, ``before:WORD`` or ``after:WORD`` (split at the first ``=``)."""
    at, sep, new = spec.partition("=")
    if not sep or not at.strip():
        raise InputError(f"--insert needs AT=TEXT (AT: an offset, before:WORD or after:WORD); got {spec!r}")
    if not new:
        raise InputError(f"--insert {spec!r}: the text to insert is empty")
    return Edit("insert", new=new, at=parse_anchor(at), occurrence=occurrence, words=words)


def parse_anchor(at: object) -> int | str:
    """An insertion point: an offset, or ``before:WORD`` / ``after:WORD``."""
    if isinstance(at, int) and not isinstance(at, bool):
        return at
    text = str(at)
    if text.strip().lstrip("-").isdigit():
        return int(text.strip())
    side, sep, word = text.partition(":")
    if sep and side.strip().lower() in ("before", "after") and word:
        return f"{side.strip().lower()}:{word}"
    raise InputError(f"insert at {text!r}: use an offset, before:WORD or after:WORD")


def edit_from_dict(data: Mapping[str, Any]) -> Edit:
    """An edit from its JSON form: ``{"replace": OLD, "with": NEW}``, ``{"delete": SPAN}``,
    ``{"remove": SPAN}`` (the rules engine's hint), ``{"insert": TEXT, "at": AT}`` or the
    :meth:`Edit.to_dict` form; ``occurrence`` and ``start`` are optional."""
    if not isinstance(data, Mapping):
        raise InputError(f"an edit is an object such as {{'replace': 'he', 'with': 'she'}}; got {data!r}")
    extra = {"occurrence": data.get("occurrence", "all"), "start": data.get("start"), "words": data.get("words", True)}
    if "kind" in data:
        known = {key: data[key] for key in ("old", "new", "at") if key in data}
        if "at" in known:
            known["at"] = parse_anchor(known["at"])
        return Edit(str(data["kind"]), **known, **extra)
    for key in ("remove", "delete"):
        if key in data:
            return Edit("delete", _string(data[key], key), **extra)
    if "replace" in data:
        return Edit("replace", _string(data["replace"], "replace"), _string(data.get("with", ""), "with"), **extra)
    if "insert" in data:
        return Edit("insert", new=_string(data["insert"], "insert"), at=parse_anchor(data.get("at")), **extra)
    raise InputError(f"unknown edit {dict(data)!r}; give replace (with with), delete, remove or insert (with at)")


def _string(value: Any, key: str) -> str:
    if not isinstance(value, str):
        raise InputError(f"edit field {key!r} must be text; got {value!r}")
    return value


def as_edit(value: Edit | Mapping[str, Any]) -> Edit:
    return value if isinstance(value, Edit) else edit_from_dict(value)


def _occurrences(text: str, needle: str, words: bool = True) -> list[int]:
    """Where ``needle`` starts in ``text``, left to right without overlaps; with ``words``, as a whole
    word (:mod:`attnscope.analysis.words`: ``he`` is not found in ``The``)."""
    if words:
        return find_words(text, needle)
    found, begin = [], text.find(needle)
    while begin >= 0:
        found.append(begin)
        begin = text.find(needle, begin + len(needle))
    return found


def _pick(starts: list[int], occurrence: str | int, what: str) -> list[int]:
    if occurrence == "all":
        return starts
    if occurrence == "first":
        return starts[:1]
    if occurrence == "last":
        return starts[-1:]
    assert isinstance(occurrence, int)
    if occurrence > len(starts):
        raise InputError(f"{what} occurs {len(starts)} time(s); there is no occurrence {occurrence}")
    return [starts[occurrence - 1]]


def resolve_edit(text: str, edit: Edit, index: int = 0) -> list[Change]:
    """The changes ``edit`` makes to ``text`` (original character positions)."""
    if edit.kind == "insert":
        return [Change(at, at, edit.new, index) for at in _insertion_points(text, edit)]
    if edit.start is not None:
        if text[edit.start : edit.start + len(edit.old)] != edit.old or edit.start < 0:
            raise InputError(f"{edit.label()}: the text at offset {edit.start} is not {edit.old!r}")
        starts = [edit.start]
    else:
        found = _occurrences(text, edit.old, edit.words)
        if not found:
            raise InputError(f"{edit.label()}: {edit.old!r} does not occur in the text{_as_word(edit)}")
        starts = _pick(found, edit.occurrence, repr(edit.old))
    return [Change(start, start + len(edit.old), edit.new, index) for start in starts]


def _as_word(edit: Edit) -> str:
    return " as a whole word (match inside words: words false, --inside-words)" if edit.words else ""


def _insertion_points(text: str, edit: Edit) -> list[int]:
    if isinstance(edit.at, int):
        if not 0 <= edit.at <= len(text):
            raise InputError(f"{edit.label()}: offset out of range (0..{len(text)})")
        return [edit.at]
    side, _, word = str(edit.at).partition(":")
    found = _occurrences(text, word, edit.words)
    if not found:
        raise InputError(f"{edit.label()}: {word!r} does not occur in the text{_as_word(edit)}")
    starts = _pick(found, edit.occurrence, repr(word))
    return starts if side == "before" else [start + len(word) for start in starts]


def apply_edits(text: str, edits: Sequence[Edit | Mapping[str, Any]]) -> EditedText:
    """``text`` with every edit applied on the original's positions, and its character map."""
    chosen = tuple(as_edit(edit) for edit in edits)
    if not chosen:
        raise InputError("no edit given: replace, delete, insert or swap something")
    changes = [change for index, edit in enumerate(chosen) for change in resolve_edit(text, edit, index)]
    changes.sort(key=lambda c: (c.start, c.end))  # stable: insertions at one point keep their order
    for before, after in pairwise(changes):
        if before.end > after.start:
            first, second = chosen[before.edit], chosen[after.edit]
            where = f"characters {after.start}..{before.end}"
            if first is second:
                raise InputError(f"{first.label()}: its occurrences overlap at {where}")
            raise InputError(f"edits overlap at {where}: {first.label()} and {second.label()}")
    pieces: list[str] = []
    char_map: list[int | None] = []
    placed: list[Change] = []
    cursor = 0
    for change in changes:
        pieces.append(text[cursor : change.start])
        char_map += range(cursor, change.start)
        placed.append(Change(change.start, change.end, change.new, change.edit, len(char_map)))
        pieces.append(change.new)
        char_map += [None] * len(change.new)
        cursor = change.end
    pieces.append(text[cursor:])
    char_map += range(cursor, len(text))
    edited = "".join(pieces)
    if not edited.strip():
        raise InputError("the edits leave no text: the counterfactual would be empty")
    if edited == text:
        raise InputError("the edits change nothing")
    return EditedText(text, edited, chosen, tuple(placed), tuple(char_map))
