"""The corpus of an atlas: a JSON Lines file (one ``{"text", "id"?, "target"?}`` per line) or a plain
``.txt`` file (one prompt per line), read and checked whole before any model work starts.

Every refusal is one line naming the line number, so a 10,000-line corpus with one bad line fails in
a second instead of after an hour of analysis.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

from attnscope.errors import InputError

MAX_CORPUS_BYTES = 1 << 30  # 1 GiB: read whole (its SHA-256 identifies the atlas)
MAX_PROMPT_CHARS = 100_000  # one prompt's text; longer ones belong to `attnscope analyze --backend qk`
MAX_PROMPTS = 1_000_000
MAX_ID_CHARS = 200
FIELDS = ("text", "id", "target")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")  # JSON "\\ud800" escapes decode to these


@dataclass(frozen=True)
class Prompt:
    """One prompt of the corpus: its place (0-based, corpus order), id (given, or its line number), text, target."""

    index: int
    id: str
    text: str
    target: str | None = None


@dataclass(frozen=True)
class Corpus:
    path: str  # as given
    sha256: str  # of the file's bytes: the atlas refuses another corpus under the same folder
    prompts: list[Prompt]


def read_corpus(path: str | Path) -> Corpus:
    """The prompts of ``path`` (``.jsonl``/``.json``: JSON Lines; ``.txt``: one per line), checked."""
    source = Path(path)
    try:
        with source.open("rb") as handle:
            data = handle.read(MAX_CORPUS_BYTES + 1)
    except OSError as error:
        raise InputError(f"cannot read the corpus {path}: {error.strerror or error}") from None
    if len(data) > MAX_CORPUS_BYTES:
        raise InputError(f"the corpus {path} is larger than {MAX_CORPUS_BYTES:,} bytes")
    plain = source.suffix.lower() == ".txt"
    prompts: list[Prompt] = []
    seen: dict[str, int] = {}
    for number, raw in enumerate(data.split(b"\n"), start=1):
        line = raw[:-1] if raw.endswith(b"\r") else raw
        if not line.strip():
            continue  # blank lines (and the final newline) separate nothing
        where = f"{path} line {number}"
        try:
            decoded = line.decode("utf-8")
        except UnicodeDecodeError as error:
            raise InputError(f"{where}: not valid UTF-8 (byte {error.start}: {error.reason})") from None
        raw_text, given_id, raw_target = (decoded, None, None) if plain else _json_line(decoded, where)
        text = _check_text(raw_text, where, "text")
        target = None if raw_target is None else _check_text(raw_target, where, "target")
        prompt_id = str(len(prompts)) if given_id is None else given_id
        if prompt_id in seen:
            raise InputError(f"{where}: id {prompt_id!r} is used twice (first on line {seen[prompt_id]})")
        seen[prompt_id] = number
        prompts.append(Prompt(len(prompts), prompt_id, text, target))
        if len(prompts) > MAX_PROMPTS:
            raise InputError(f"the corpus {path} has more than {MAX_PROMPTS:,} prompts")
    if not prompts:
        raise InputError(f"the corpus {path} has no prompts")
    return Corpus(str(path), hashlib.sha256(data).hexdigest(), prompts)


def _json_line(line: str, where: str) -> tuple[object, str | None, object]:
    """``(text, id, target)`` of one JSON Lines line, or a one-line refusal."""
    try:
        row = json.loads(line)
    except json.JSONDecodeError as error:
        raise InputError(f"{where}: not valid JSON ({error.msg} at column {error.colno})") from None
    if not isinstance(row, dict):
        raise InputError(f'{where}: expected a JSON object like {{"text": "..."}}, got {type(row).__name__}')
    unknown = sorted(set(row) - set(FIELDS))
    if unknown:
        raise InputError(f"{where}: unknown field {unknown[0]!r}; fields: {', '.join(FIELDS)}")
    if "text" not in row:
        raise InputError(f'{where}: no "text"')
    given = row.get("id")
    if given is not None:
        if not isinstance(given, str | int) or isinstance(given, bool):
            raise InputError(f'{where}: "id" must be a string or an integer')
        given = _check_text(str(given), where, "id")
        if len(given) > MAX_ID_CHARS:
            raise InputError(f'{where}: "id" is longer than {MAX_ID_CHARS} characters')
    return row["text"], given, row.get("target")


def _check_text(value: object, where: str, field: str) -> str:
    """A prompt's text (or target, or id): a non-blank string of valid Unicode within the limit."""
    if not isinstance(value, str):
        raise InputError(f'{where}: "{field}" must be a string, not {type(value).__name__}')
    if not value.strip():
        raise InputError(f'{where}: "{field}" is empty or blank')
    if len(value) > MAX_PROMPT_CHARS:
        raise InputError(f'{where}: "{field}" is {len(value):,} characters; the limit is {MAX_PROMPT_CHARS:,}')
    surrogate = _LONE_SURROGATE.search(value)
    if surrogate:
        code = ord(surrogate.group())
        raise InputError(f'{where}: "{field}" holds a lone surrogate (U+{code:04X}) at character {surrogate.start()}')
    return value
