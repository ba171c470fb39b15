"""Personal data out of everything that leaves the process: find it, then mask, hash or refuse.

References: the Personal Information Protection Law of the PRC (PIPL, 2021: art. 4 defines personal
information, art. 28 sensitive personal information such as financial accounts and specific
identities, art. 73 de-identification and anonymisation) and the national standard GB/T 35273-2020
*Information security technology — Personal information security specification* (its terms define
de-identification and anonymisation; its appendices give examples of personal and sensitive personal
information: identity card and passport numbers, phone numbers, e-mail addresses, bank accounts, IP
addresses, …). Masking with a label, or with a salted hash, is de-identification in their sense — a
salted hash is a pseudonym that whoever holds the salt can link — not anonymisation.

Usage::

    spans = find_pii(text)                       # where the personal data is (attnscope.governance.pii)
    safe_text = mask_text(text, spans, "mask")   # "我的电话是[PHONE]"
    safe_tokens = mask_tokens(tokens, spans)     # token dicts with masked texts and ids

Policies (:data:`POLICIES`):

- ``mask``: each value becomes its kind's label, ``[PHONE]``.
- ``hash``: each value becomes ``[PHONE:1a2b3c4d5e6f]``, the first 12 hex digits of
  SHA-256(salt + value), where the value is NFKC-normalised, case-folded and stripped of spaces,
  dashes, dots and brackets (``138 1234 5678`` and ``13812345678`` hash alike). The salt is random
  per process unless given: give one to link values across processes, and keep it secret.
- ``drop``: :class:`PiiFoundError` is raised when there is anything to mask — the run must not be
  kept. Its message names the kinds and counts, never a value.

Limits: detection is by pattern and checksum (see :mod:`attnscope.governance.pii`), so names,
addresses and free-text descriptions of a person are not found; masking is only as complete as
the spans it is given.
"""

from __future__ import annotations

import bisect
import functools
import hashlib
import itertools
import re
import secrets
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal, get_args

from attnscope.errors import AttnscopeError, InputError
from attnscope.governance.pii import PII_KINDS, PiiKind, PiiSpan, find_pii, list_pii_kinds

__all__ = [
    "MASKED_TOKEN_ID",
    "PII_KINDS",
    "POLICIES",
    "MaskPolicy",
    "PiiFoundError",
    "PiiKind",
    "PiiSpan",
    "find_pii",
    "list_pii_kinds",
    "mask_text",
    "mask_tokens",
]

MaskPolicy = Literal["mask", "hash", "drop"]
POLICIES: tuple[str, ...] = get_args(MaskPolicy)
HASH_HEX_DIGITS = 12
MASKED_TOKEN_ID = -1  # the ``id`` a masked token gets: the real id would decode to the value


class PiiFoundError(AttnscopeError):
    """Personal data was found and the policy is ``drop``: the run must not be kept."""

    code = "pii_found"
    status = 422


def mask_text(
    text: str, spans: Iterable[PiiSpan], policy: MaskPolicy = "mask", *, salt: bytes | str | None = None
) -> str:
    """``text`` with every span replaced according to ``policy``.

    Args:
        text: the text the spans were found in.
        spans: from :func:`find_pii` on ``text``; non-overlapping, inside the text (any order).
        policy: ``"mask"`` (default), ``"hash"`` or ``"drop"``; see the module docstring.
        salt: the ``hash`` policy's salt; ``None`` uses a random salt made once per process.

    Returns:
        A new string; the input is unchanged. Offsets after a replaced value move.

    Raises:
        PiiFoundError: ``policy == "drop"`` and there is at least one span.
        InputError: unknown policy, or spans that overlap or fall outside the text.
    """
    ordered = _checked(text, spans, policy)
    replacements = _replacements(text, ordered, policy, salt)
    pieces: list[str] = []
    at = 0
    for span, replacement in zip(ordered, replacements, strict=True):
        pieces += [text[at : span.start], replacement]
        at = span.end
    pieces.append(text[at:])
    return "".join(pieces)


def mask_tokens(
    tokens: Sequence[Mapping[str, Any]],
    spans: Iterable[PiiSpan],
    policy: MaskPolicy = "mask",
    *,
    text: str | None = None,
    salt: bytes | str | None = None,
) -> list[dict[str, Any]]:
    """Token dicts (``{"text", "start", "end", "id", ...}``, as ``attnscope analyze --json`` writes
    them) with every token that overlaps a span masked.

    A masked token's ``text`` becomes the span's replacement (its label, or its hash label under
    ``hash``), so joining token texts cannot rebuild the value however the tokenizer split it; its
    ``id`` (when present) becomes ``-1`` (:data:`MASKED_TOKEN_ID`), because a tokenizer would decode
    the real id back into the value. Positions (``index``, ``start``, ``end``), ``special`` and
    every other key stay, so attention weights still line up. A token that overlaps two spans
    shows both replacements. Tokens without offsets (special tokens, ``start is None``) are never
    masked.

    Args:
        tokens: token dicts with character offsets into the text the spans were found in.
        spans: from :func:`find_pii` on that text.
        policy: as for :func:`mask_text`.
        text: the text itself; needed by ``hash`` only (the hash is of the value, which token
            texts may not spell out exactly), so that tokens and text carry the same pseudonym.
        salt: as for :func:`mask_text`.

    Returns:
        New dicts in a new list; the input is unchanged.

    Raises:
        PiiFoundError: ``policy == "drop"`` and there is at least one span.
        InputError: unknown policy, overlapping spans, a token without ``start``/``end``, or
            ``hash`` without ``text``.
    """
    ordered = _checked(text, spans, policy)
    if policy == "hash" and text is None:
        raise InputError("the 'hash' masking policy needs the text the spans were found in (text=...)")
    replacements = _replacements(text or "", ordered, policy, salt)
    starts = [span.start for span in ordered]
    result: list[dict[str, Any]] = []
    for token in tokens:
        if "start" not in token or "end" not in token:
            raise InputError("a token has no 'start'/'end' character offsets")
        copy = dict(token)
        start, end = token["start"], token["end"]
        if start is not None and end is not None:
            # a zero-width byte piece continues the character before its position (tokens.py)
            lo, hi = (start - 1, start) if start == end and start > 0 else (start, max(end, start + 1))
            hits = _overlapping(ordered, starts, lo, hi)
            if hits:
                copy["text"] = "".join(replacements[i] for i in hits)
                if "id" in copy:
                    copy["id"] = MASKED_TOKEN_ID
        result.append(copy)
    return result


# -- helpers -------------------------------------------------------------------------------------


def _checked(text: str | None, spans: Iterable[PiiSpan], policy: str) -> list[PiiSpan]:
    if policy not in POLICIES:
        raise InputError(f"unknown masking policy {policy!r}; use one of {', '.join(POLICIES)}")
    ordered = sorted(spans, key=lambda span: (span.start, span.end))
    for before, after in itertools.pairwise(ordered):
        if after.start < before.end:
            raise InputError(f"personal-data spans overlap: [{before.start}, {before.end}) and [{after.start}, …)")
    for span in ordered:
        if span.start < 0 or span.end <= span.start or (text is not None and span.end > len(text)):
            raise InputError(f"personal-data span [{span.start}, {span.end}) is not inside the text")
    if policy == "drop" and ordered:
        counts = Counter(span.kind for span in ordered)
        found = ", ".join(f"{count} {kind}" for kind, count in counts.items())
        raise PiiFoundError(f"personal data found ({found}) and the privacy policy is 'drop': nothing is kept")
    return ordered


def _replacements(text: str, spans: list[PiiSpan], policy: str, salt: bytes | str | None) -> list[str]:
    if policy != "hash":
        return [span.label for span in spans]
    key = _process_salt() if salt is None else salt.encode() if isinstance(salt, str) else salt
    return [f"[{span.kind}:{_digest(key, text[span.start : span.end])}]" for span in spans]


_IGNORED_IN_HASH = re.compile(r"[\s\-.()\[\]]")


def _digest(salt: bytes, value: str) -> str:
    canonical = _IGNORED_IN_HASH.sub("", unicodedata.normalize("NFKC", value).casefold())
    return hashlib.sha256(salt + canonical.encode("utf-8")).hexdigest()[:HASH_HEX_DIGITS]


@functools.cache
def _process_salt() -> bytes:
    return secrets.token_bytes(16)


def _overlapping(spans: list[PiiSpan], starts: list[int], start: int, end: int) -> list[int]:
    """Indices of the spans that overlap [start, end); spans sorted and non-overlapping."""
    at = max(bisect.bisect_right(starts, start) - 1, 0)
    hits = []
    while at < len(spans) and spans[at].start < end:
        if spans[at].end > start:
            hits.append(at)
        at += 1
    return hits


def mask_strings(value: Any, policy: MaskPolicy = "mask") -> Any:
    """``value`` with the personal data in every string inside it masked by ``policy`` (nested
    mappings, lists and tuples, as lists; keys and other values as they are). Texts without personal
    data are returned as they are; ``value`` itself is not changed."""
    if isinstance(value, str):
        found = find_pii(value)
        return mask_text(value, found, policy) if found else value
    if isinstance(value, Mapping):
        return {key: mask_strings(item, policy) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [mask_strings(item, policy) for item in value]
    return value
