"""Bias probe suites: what a suite file says, checked, with every term located by character span.

A suite is a JSON object (format ``version`` 1)::

    {"name": "gender-occupation-en", "version": 1, "language": "en", "description": "...",
     "source": "written for attnscope ...", "licence": "Apache-2.0",
     "order": ["female", "male"],                      # what the first and second variant of every pair are
     "pairs": [PAIR, ...]}

Every pair has exactly two variants, in the suite's ``order``; the gap of a pair is always first
minus second. Two kinds of pair:

- continuation pairs — one prompt, two continuations (the identity term is what follows)::

    {"template": "The nurse said that", "terms": {"occupation": "nurse"},
     "variants": [{"identity": "female", "continuation": " she"}, {"identity": "male", "continuation": " he"}]}

- text pairs — two prompts (the identity term is inside them), one continuation::

    {"continuation": " chef",
     "variants": [{"identity": "Italy", "text": "My friend from Italy works as a", "terms": {"identity": "Italy"}},
                  {"identity": "Norway", "text": "My friend from Norway works as a", "terms": {"identity": "Norway"}}]}

A variant's prompt is its ``text``, else the pair's ``template``; its continuation is its own, else
the pair's. ``terms`` (on the pair, for both variants, or on a variant) name the tokens whose
attention is measured, by role: a text (its first whole-word occurrence in prompt + continuation)
or a ``[start, end)`` character span of prompt + continuation. The query whose attention is read is
the prediction position (the last prompt token) in a text pair and the continuation's last token in
a continuation pair, where the identity term is the query itself and the terms are what it looks
back at (the occupation). Optional: a pair's ``id`` and ``tags``
(free words; the summary is also given per tag). Parsing is pure: :func:`parse_suite` takes the
decoded JSON; reading files is :mod:`attnscope.methods.bias_suites`'s job.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from attnscope.analysis.words import find_words
from attnscope.errors import InputError

SUITE_FORMAT = 1
MAX_PAIRS = 5000
MAX_TEXT_CHARS = 2000  # a probe is a sentence; longer prompts are a mistake in the file
NAME_JOINERS = "'’-"  # inside a term's word: Jean-Luc, O'Neil
SUITE_KEYS = {"name", "version", "language", "description", "source", "licence", "order", "pairs"}
PAIR_KEYS = {"id", "template", "continuation", "terms", "tags", "variants"}
VARIANT_KEYS = {"identity", "text", "continuation", "terms"}


@dataclass(frozen=True)
class Term:
    role: str
    start: int  # character span in the variant's prompt + continuation
    end: int

    def to_dict(self, full_text: str) -> dict[str, Any]:
        return {"role": self.role, "text": full_text[self.start : self.end], "start": self.start, "end": self.end}


@dataclass(frozen=True)
class Variant:
    identity: str
    prompt: str
    continuation: str
    terms: tuple[Term, ...]

    @property
    def full_text(self) -> str:
        return self.prompt + self.continuation


@dataclass(frozen=True)
class Pair:
    id: str
    template: str  # the shared prompt, or the first variant's prompt in a text pair
    variants: tuple[Variant, Variant]
    tags: tuple[str, ...]
    query: str  # "prediction" (text pair: the last prompt token) | "continuation" (its last token)

    @property
    def roles(self) -> list[str]:
        return [term.role for term in self.variants[0].terms]


@dataclass(frozen=True)
class Suite:
    name: str
    language: str | None
    description: str | None
    source: str | None
    licence: str | None
    order: tuple[str, str]
    pairs: tuple[Pair, ...]
    sha256: str  # of the suite's canonical JSON

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "language": self.language,
            "description": self.description,
            "source": self.source,
            "licence": self.licence,
            "version": SUITE_FORMAT,
            "order": list(self.order),
            "pairs": len(self.pairs),
            "sha256": self.sha256,
        }


def parse_suite(data: Any, origin: str = "suite") -> Suite:
    """The checked :class:`Suite` of decoded JSON ``data``; ``origin`` names it in the one-line
    :class:`InputError` that any problem raises (unknown keys, missing variants, terms not found...)."""
    where = origin
    _object(data, where, SUITE_KEYS, required=("name", "order", "pairs"))
    if data.get("version", SUITE_FORMAT) != SUITE_FORMAT:
        raise InputError(f"{where}: version {data.get('version')!r} is not a suite format this attnscope reads (1)")
    name = _text(data["name"], f"{where}: name")
    where = f"suite {name!r}" if origin == "suite" else origin
    described = ("language", "description", "source", "licence")
    optional = {key: _optional_text(data.get(key), f"{where}: {key}") for key in described}
    order = data["order"]
    if not isinstance(order, list) or len(order) != 2:
        raise InputError(f"{where}: order must list two names (what the first and the second variant are)")
    first, second = (_text(value, f"{where}: order") for value in order)
    pairs = data["pairs"]
    if not isinstance(pairs, list) or not pairs:
        raise InputError(f"{where}: pairs must be a non-empty list")
    if len(pairs) > MAX_PAIRS:
        raise InputError(f"{where}: {len(pairs):,} pairs; the limit is {MAX_PAIRS:,}")
    parsed = tuple(_pair(pair, f"{where}: pair {index + 1}", index) for index, pair in enumerate(pairs))
    ids = [pair.id for pair in parsed]
    duplicate = next((pair_id for pair_id in ids if ids.count(pair_id) > 1), None)
    if duplicate is not None:
        raise InputError(f"{where}: pair id {duplicate!r} is used twice")
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return Suite(
        name=name,
        language=optional["language"],
        description=optional["description"],
        source=optional["source"],
        licence=optional["licence"],
        order=(first, second),
        pairs=parsed,
        sha256=hashlib.sha256(canonical.encode("utf-8")).hexdigest(),
    )


def _pair(data: Any, where: str, index: int) -> Pair:
    _object(data, where, PAIR_KEYS, required=("variants",))
    variants = data["variants"]
    if not isinstance(variants, list) or len(variants) != 2:
        count = len(variants) if isinstance(variants, list) else "no list of"
        raise InputError(f"{where}: a pair needs exactly 2 variants, not {count}")
    template = None if data.get("template") is None else _text(data["template"], f"{where}: template")
    continuation = None if data.get("continuation") is None else _text(data["continuation"], f"{where}: continuation")
    shared_terms = _terms_spec(data.get("terms", {}), f"{where}: terms")
    tags = data.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(tag, str) and tag.strip() for tag in tags):
        raise InputError(f"{where}: tags must be a list of words")
    texts = []
    for number, variant in enumerate(variants):
        spot = f"{where}: variant {number + 1}"
        _object(variant, spot, VARIANT_KEYS, required=("identity",))
        prompt = variant.get("text", template)
        ending = variant.get("continuation", continuation)
        if prompt is None:
            raise InputError(f"{spot}: no prompt (give the pair a template or the variant a text)")
        if ending is None:
            raise InputError(f"{spot}: no continuation (give the pair or the variant one)")
        texts.append((_text(prompt, f"{spot}: text"), _text(ending, f"{spot}: continuation", strip=False)))
    if texts[0] == texts[1]:
        raise InputError(f"{where}: both variants have the same prompt and continuation")
    query = "continuation" if texts[0][0] == texts[1][0] else "prediction"
    built = []
    for number, (variant, (prompt, ending)) in enumerate(zip(variants, texts, strict=True)):
        spot = f"{where}: variant {number + 1}"
        specs = {**shared_terms, **_terms_spec(variant.get("terms", {}), f"{spot}: terms")}
        terms = tuple(
            _locate(role, spec, prompt, ending, query, f"{spot}: term {role!r}") for role, spec in specs.items()
        )
        built.append(Variant(_text(variant["identity"], f"{spot}: identity"), prompt, ending, terms))
    if [t.role for t in built[0].terms] != [t.role for t in built[1].terms]:
        raise InputError(f"{where}: the variants mark different term roles; mark the same roles in both")
    pair_id = _text(data["id"], f"{where}: id") if "id" in data else f"{index + 1}"
    template_text = template if template is not None else texts[0][0]
    return Pair(pair_id, template_text, (built[0], built[1]), tuple(tags), query)


def _locate(role: str, spec: Any, prompt: str, ending: str, query: str, where: str) -> Term:
    """The term's span in prompt + continuation; a text pair's terms must lie in the prompt (the
    prediction position cannot attend to the continuation)."""
    full = prompt + ending
    if isinstance(spec, str):
        start = find_word(full, spec)
        if start < 0:
            raise InputError(f"{where}: {spec!r} is not a word of {full!r}")
        span = (start, start + len(spec))
    else:
        start, end = spec
        if not 0 <= start < end <= len(full):
            raise InputError(f"{where}: span [{start}, {end}) is outside the {len(full)} characters of {full!r}")
        span = (start, end)
    if query == "prediction" and span[1] > len(prompt):
        raise InputError(
            f"{where}: {full[span[0] : span[1]]!r} lies in the continuation; the prediction position attends "
            "to the prompt only (mark terms of the prompt)"
        )
    return Term(role, *span)


def find_word(text: str, word: str) -> int:
    """The first index of ``word`` in ``text`` as a whole word (:mod:`attnscope.analysis.words`; in a
    suite, apostrophes and hyphens join words too: "Luc" is not found in "Jean-Luc"); -1: not found."""
    found = find_words(text, word, joiners=NAME_JOINERS)
    return found[0] if found else -1


def _terms_spec(data: Any, where: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise InputError(f"{where}: terms must be an object of role: text or [start, end]")
    specs: dict[str, Any] = {}
    for role, spec in data.items():
        if not role.strip():
            raise InputError(f"{where}: a term role is blank")
        if isinstance(spec, str) and spec.strip():
            specs[role] = spec
        elif (
            isinstance(spec, list)
            and len(spec) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) for v in spec)
        ):
            specs[role] = (spec[0], spec[1])
        else:
            raise InputError(f"{where}: {role!r} must be a non-blank text or a [start, end] character span")
    return specs


def _object(data: Any, where: str, allowed: set[str], *, required: tuple[str, ...]) -> None:
    if not isinstance(data, dict):
        raise InputError(f"{where}: must be a JSON object, not {type(data).__name__}")
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise InputError(f"{where}: unknown key {unknown[0]!r}; allowed: {', '.join(sorted(allowed))}")
    missing = [key for key in required if key not in data]
    if missing:
        raise InputError(f"{where}: missing {missing[0]!r}")


def _text(value: Any, where: str, *, strip: bool = True) -> str:
    if not isinstance(value, str) or (strip and not value.strip()) or not value:
        raise InputError(f"{where} must be a non-blank text")
    if len(value) > MAX_TEXT_CHARS:
        raise InputError(f"{where} is {len(value):,} characters; the limit is {MAX_TEXT_CHARS:,}")
    return value


def _optional_text(value: Any, where: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InputError(f"{where} must be a text")
    return value
