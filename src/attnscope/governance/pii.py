"""Finding personal data in text: where each value is, what kind it is, never the value itself.

Every kind pairs a candidate pattern with a validator from a maintained library, so that a number
is reported only when it is what it claims to be:

========== ===================================================================================
kind       what is found, and how it is checked
========== ===================================================================================
CN_ID      Chinese resident identity numbers (18 characters, GB 11643): ISO 7064 MOD 11-2 check
           digit (``stdnum.cn.ric``), a real birth date (1900 … today), a GB/T 2260 province code
PHONE      phone numbers, Chinese mobiles and landlines with or without +86/0086, spaces, dashes
           and brackets, and any number written with its country code (``phonenumbers``'
           ``PhoneNumberMatcher`` at leniency VALID, then ``is_valid_number``)
BANK_CARD  bank and credit card numbers, 13–19 digits starting 1–6, whole or grouped by single
           spaces or dashes (4-4-4-4[-1…4], 4-6-5, 4-6-4), Luhn-checked (``stdnum.luhn``)
EMAIL      e-mail addresses with an ASCII local part and a dotted domain ending in a letters TLD
IP         IPv4 and IPv6 addresses (``ipaddress``: no octet over 255, no leading zeros)
PASSPORT   Chinese ordinary passports (E or G + 8 digits, or E + a letter other than I/O + 7
           digits), only when claimed by a keyword (护照/護照/passport): the nearest such value up
           to 30 characters after it (else 15 before it) in the same clause (no comma, semicolon,
           。!?, line break or other number between), and values chained to that one by
           和/与/及/and/or/、/, only. The shapes alone are common in part numbers and codes
IBAN       international bank account numbers (``stdnum.iban``: country format and MOD 97-10)
US_SSN     US social security numbers written ddd-dd-dddd (``stdnum.us.ssn``)
========== ===================================================================================

The text is matched after NFKC normalisation, character by character (full-width digits, ``＠``,
``＋``; format characters such as zero-width spaces are dropped), and offsets are mapped back to
the original string. Patterns never rely on ``\\b``: between a Chinese character and a digit there
is no word boundary, and ``我的电话是13812345678，`` must still yield the number. Spans that overlap
are resolved longest first (a phone number inside an e-mail address is part of the address), then
the checksummed kinds first: CN_ID, BANK_CARD, IBAN, US_SSN, PASSPORT, EMAIL, IP, PHONE.

Offline by construction: ``stdnum`` and ``phonenumbers`` ship their data in the package, and no
other library is used. Not found: names, postal addresses, 15-digit first-generation ID numbers,
12-digit Maestro cards, national phone numbers of regions other than ``regions`` unless they happen
to be valid there too, non-ASCII e-mail addresses.
"""

from __future__ import annotations

import bisect
import datetime
import functools
import ipaddress
import itertools
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

import phonenumbers
from stdnum import iban, luhn
from stdnum.cn import ric
from stdnum.exceptions import ValidationError
from stdnum.us import ssn

from attnscope.errors import InputError


@dataclass(frozen=True, slots=True)
class PiiKind:
    """One kind of personal data that :func:`find_pii` knows."""

    name: str  # "CN_ID"
    description: str

    @property
    def label(self) -> str:
        """What a masked value is replaced with: ``[CN_ID]``."""
        return f"[{self.name}]"


@dataclass(frozen=True, slots=True)
class PiiSpan:
    """Where one value is: ``text[start:end]`` (character offsets into the original text)."""

    start: int
    end: int
    kind: str  # a PII_KINDS name
    label: str  # "[CN_ID]"


PII_KINDS: dict[str, PiiKind] = {
    kind.name: kind
    for kind in (
        PiiKind("CN_ID", "Chinese resident identity number, check digit and birth date validated"),
        PiiKind("PHONE", "phone number: Chinese mobile or landline, or any number with its country code"),
        PiiKind("BANK_CARD", "bank or credit card number, 13-19 digits, Luhn-validated"),
        PiiKind("EMAIL", "e-mail address"),
        PiiKind("IP", "IPv4 or IPv6 address"),
        PiiKind("PASSPORT", "Chinese passport number next to a passport keyword"),
        PiiKind("IBAN", "international bank account number, MOD 97-10 validated"),
        PiiKind("US_SSN", "US social security number written ddd-dd-dddd"),
    )
}
# which kind wins when two equally long spans overlap: the more specific, checksummed kinds first
_RANKING = ("CN_ID", "BANK_CARD", "IBAN", "US_SSN", "PASSPORT", "EMAIL", "IP", "PHONE")
_PRIORITY = {name: rank for rank, name in enumerate(_RANKING)}


def list_pii_kinds() -> list[PiiKind]:
    """Every kind :func:`find_pii` detects."""
    return list(PII_KINDS.values())


def find_pii(text: str, kinds: Iterable[str] | None = None, *, regions: Sequence[str] = ("CN",)) -> list[PiiSpan]:
    """The personal data in ``text``: sorted, non-overlapping spans.

    Args:
        text: any text, Chinese, English or mixed; full-width characters are understood.
        kinds: names from :data:`PII_KINDS` to look for; ``None`` (default) looks for all.
        regions: ISO 3166 regions whose national phone numbers (written without a country code)
            are recognised; default ``("CN",)``. Numbers written with ``+CC``/``00CC`` are found
            whatever this says. Adding ``"US"`` finds more US numbers but also reads 11-digit
            numbers starting with 1 as US numbers.

    Returns:
        Spans with character offsets into ``text`` itself (not the normalised text), sorted by
        ``start``; ``text[span.start:span.end]`` is the value as written.

    Raises:
        InputError: a kind or a region is unknown.
    """
    wanted = list(PII_KINDS) if kinds is None else list(dict.fromkeys(kinds))
    unknown = [name for name in wanted if name not in PII_KINDS]
    if unknown:
        raise InputError(f"unknown personal-data kind(s) {unknown}; known: {', '.join(PII_KINDS)}")
    bad_regions = [] if isinstance(regions, str) else [r for r in regions if r not in phonenumbers.SUPPORTED_REGIONS]
    if bad_regions or isinstance(regions, str):
        raise InputError(
            f"unknown phone region(s) {bad_regions or regions!r}: give ISO 3166 codes such as ('CN', 'US')"
        )
    if not text:
        return []
    normal, origin = _normalise(text)
    candidates: list[tuple[int, int, str]] = []
    for name in wanted:
        candidates.extend((start, end, name) for start, end in _RECOGNISERS[name](normal, tuple(regions)))
    return _to_original(_resolve(candidates), origin)


# -- normalisation -------------------------------------------------------------------------------


def _normalise(text: str) -> tuple[str, list[int] | None]:
    """(NFKC text, origin) where ``origin[j]`` is the index in ``text`` of normalised character ``j``;
    ``origin`` is ``None`` when offsets did not move (every character became exactly one).
    Invisible format characters (soft hyphen, zero-width spaces and joiners, bidi marks, BOM) are
    dropped, so that they cannot hide a number."""
    if text.isascii():
        return text, None
    pieces = [char if char.isascii() else _nfkc(char) for char in text]
    normal = "".join(pieces)
    if len(normal) == len(text) and all(len(piece) == 1 for piece in pieces):
        return normal, None
    origin = [index for index, piece in enumerate(pieces) for _ in piece]
    return normal, origin


_INVISIBLE = re.compile("[\u00ad\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff]")


@functools.lru_cache(maxsize=4096)
def _nfkc(char: str) -> str:
    return "" if _INVISIBLE.match(char) else unicodedata.normalize("NFKC", char)


def _resolve(candidates: list[tuple[int, int, str]]) -> list[tuple[int, int, str]]:
    """Non-overlapping spans, longest first, ties by kind order; sorted by start."""
    kept_starts: list[int] = []
    kept: list[tuple[int, int, str]] = []
    for start, end, kind in sorted(set(candidates), key=lambda c: (c[0] - c[1], _PRIORITY[c[2]], c[0])):
        at = bisect.bisect_left(kept_starts, start)
        if at > 0 and kept[at - 1][1] > start:
            continue
        if at < len(kept) and kept[at][0] < end:
            continue
        kept_starts.insert(at, start)
        kept.insert(at, (start, end, kind))
    return kept


def _to_original(spans: list[tuple[int, int, str]], origin: list[int] | None) -> list[PiiSpan]:
    result: list[PiiSpan] = []
    for start, end, kind in spans:
        if origin is not None:
            start, end = origin[start], origin[end - 1] + 1
        if result and result[-1].end > start:  # two spans inside one expanded character (rare)
            start = result[-1].end
        if start < end:
            result.append(PiiSpan(start, end, kind, PII_KINDS[kind].label))
    return result


# -- recognisers: normalised text -> (start, end) candidates --------------------------------------

Recogniser = Callable[[str, tuple[str, ...]], Iterator[tuple[int, int]]]

# GB/T 2260 province-level codes, the first two digits of a resident ID (83: Taiwan residents' permits)
_PROVINCE_RANGES = ((11, 15), (21, 23), (31, 37), (41, 46), (50, 54), (61, 65), (71, 71), (81, 83))
_CN_PROVINCES = frozenset(str(code) for first, last in _PROVINCE_RANGES for code in range(first, last + 1))
_CN_ID = re.compile(r"(?<![0-9])[0-9]{6}(?P<sep>[ -]?)[0-9]{8}(?P=sep)[0-9]{3}[0-9Xx](?![0-9])")


def _birth_date(number: str) -> datetime.date | None:
    """The birth date digits 7-14 of an ID-shaped number stand for, if they are a real past date."""
    try:
        born = ric.get_birth_date(number[:14])
    except ValidationError:
        return None
    return born if born.year >= 1900 and born <= datetime.date.today() else None


def _id_shaped(digits: str) -> bool:
    """A province code and a birth year (1800 … this year) where a resident ID has them: such a
    number is an ID, perhaps mistyped, and not a card whatever its Luhn digit."""
    return digits[:2] in _CN_PROVINCES and 1800 <= int(digits[6:10]) <= datetime.date.today().year


def _cn_ids(text: str, regions: tuple[str, ...]) -> Iterator[tuple[int, int]]:
    for match in _CN_ID.finditer(text):
        number = re.sub("[ -]", "", match.group()).upper()
        if _id_shaped(number) and _birth_date(number) and ric.calc_check_digit(number) == number[17]:
            yield match.span()


_DIGIT_RUN = re.compile(r"(?<![0-9])[0-9]+(?:[ -][0-9]+)*(?![0-9])")
_GROUP = re.compile(r"[0-9]+")
_CARD_SHAPES = ((4, 6, 5), (4, 6, 4))


def _card_shaped(sizes: list[int]) -> bool:
    if len(sizes) == 1:
        return 13 <= sizes[0] <= 19
    if not 13 <= sum(sizes) <= 19:
        return False
    return tuple(sizes) in _CARD_SHAPES or (all(s == 4 for s in sizes[:-1]) and 1 <= sizes[-1] <= 4)


def _bank_cards(text: str, regions: tuple[str, ...]) -> Iterator[tuple[int, int]]:
    for run in _DIGIT_RUN.finditer(text):
        groups = [(g.start() + run.start(), g.end() + run.start()) for g in _GROUP.finditer(run.group())]
        for first in range(len(groups)):
            for last in range(first, min(first + 5, len(groups))):
                start, end = groups[first][0], groups[last][1]
                separators = {text[a_end] for (_, a_end) in groups[first:last]}
                digits = "".join(text[a:b] for a, b in groups[first : last + 1])
                if len(separators) > 1 or digits[0] not in "123456":
                    continue
                if not _card_shaped([b - a for a, b in groups[first : last + 1]]):
                    continue
                # a resident ID with a wrong check digit, or one digit short, is not a card
                if first == last and len(digits) in (17, 18) and _id_shaped(digits):
                    continue
                if luhn.is_valid(digits):
                    yield start, end


_DOTTED_QUAD = re.compile(r"[0-9]{1,3}(?:\.[0-9]{1,3}){3}")


def _phones(text: str, regions: tuple[str, ...]) -> Iterator[tuple[int, int]]:
    for region in regions:
        # max_tries: the default (65535 candidates) would silently stop early in a long text
        matcher = phonenumbers.PhoneNumberMatcher(text, region, phonenumbers.Leniency.VALID, max_tries=len(text) + 1)
        for match in matcher:
            if phonenumbers.is_valid_number(match.number) and not _DOTTED_QUAD.fullmatch(match.raw_string):
                yield match.start, match.end


_EMAIL = re.compile(
    r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9_%+-](?:[A-Za-z0-9._%+-]{0,62}[A-Za-z0-9_%+-])?"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}(?![A-Za-z0-9-])"
)


def _emails(text: str, regions: tuple[str, ...]) -> Iterator[tuple[int, int]]:
    for match in _EMAIL.finditer(text):
        if ".." not in match.group():
            yield match.span()


_IPV4 = re.compile(r"(?<![0-9.])(?:[0-9]{1,3}\.){3}[0-9]{1,3}(?![0-9]|\.[0-9])")
_IPV6 = re.compile(
    r"(?<![0-9A-Fa-f:.])(?:[0-9A-Fa-f]{0,4}:){2,8}(?:[0-9]{1,3}(?:\.[0-9]{1,3}){3}|[0-9A-Fa-f]{1,4})?(?![0-9A-Za-z:])"
)


def _ips(text: str, regions: tuple[str, ...]) -> Iterator[tuple[int, int]]:
    for pattern, address in ((_IPV4, ipaddress.IPv4Address), (_IPV6, ipaddress.IPv6Address)):
        for match in pattern.finditer(text):
            value, start = match.group(), match.start()
            if pattern is _IPV6:
                if start and text[start - 1].isascii() and text[start - 1].isalpha() and value[0] != ":":
                    cut = value.index(":") + 1  # the first group ends a word: "IPv6:2001:db8::1"
                    value, start = value[cut:], start + cut
                if value.startswith(":") and not value.startswith("::"):  # "IP:2001:db8::1"
                    value, start = value[1:], start + 1
                if not any(c.isalnum() for c in value):
                    continue  # "::" alone is an address only in theory
            try:
                address(value)
            except ValueError:
                continue
            yield start, match.end()


_PASSPORT = re.compile(r"(?<![A-Za-z0-9])(?:[EG][0-9]{8}|E[A-HJ-NP-Z][0-9]{7})(?![A-Za-z0-9])")
_PASSPORT_KEYWORD = re.compile(r"护照|護照|passport", re.IGNORECASE)
_PASSPORT_AFTER, _PASSPORT_BEFORE = 30, 15  # characters a value may stand after / before its keyword
_SEPARATES = re.compile(r"[,，、;；。!！?？\n0-9]")  # a clause break, or another number in between
_CONNECTOR = re.compile(r"\s*(?:[,，、/和与及]|and|or)?\s*", re.IGNORECASE)


def _passports(text: str, regions: tuple[str, ...]) -> Iterator[tuple[int, int]]:
    """Each keyword claims the nearest passport-shaped value after it (else before it) in its
    clause with no other number in between, and the values chained to that one by
    和/与/及/and/or/、/commas only."""
    keywords = [m.span() for m in _PASSPORT_KEYWORD.finditer(text)]
    if not keywords:
        return
    shapes = [m.span() for m in _PASSPORT.finditer(text)]
    for k_start, k_end in keywords:
        after = [i for i, (start, _) in enumerate(shapes) if k_end <= start <= k_end + _PASSPORT_AFTER]
        before = [i for i, (_, end) in enumerate(shapes) if k_start - _PASSPORT_BEFORE <= end <= k_start]
        if after and not _SEPARATES.search(text, k_end, shapes[after[0]][0]):
            first = after[0]
        elif before and not _SEPARATES.search(text, shapes[before[-1]][1], k_start):
            first = before[-1]
        else:
            continue
        yield shapes[first]
        for previous, following in itertools.pairwise(shapes[first:]):
            if not _CONNECTOR.fullmatch(text, previous[1], following[0]):
                break
            yield following


_IBAN = re.compile(r"(?<![A-Za-z0-9])[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?(?![A-Za-z0-9])")


def _ibans(text: str, regions: tuple[str, ...]) -> Iterator[tuple[int, int]]:
    for match in _IBAN.finditer(text):
        value = match.group()
        while len(value) >= 15:  # a trailing capitalised word may have been taken as a group: drop groups
            if iban.is_valid(value):
                yield match.start(), match.start() + len(value)
                break
            value = value[: value.rfind(" ")] if " " in value else ""


_US_SSN = re.compile(r"(?<![0-9-])[0-9]{3}-[0-9]{2}-[0-9]{4}(?![0-9-])")


def _us_ssns(text: str, regions: tuple[str, ...]) -> Iterator[tuple[int, int]]:
    for match in _US_SSN.finditer(text):
        if ssn.is_valid(match.group()):
            yield match.span()


_RECOGNISERS: dict[str, Recogniser] = {
    "CN_ID": _cn_ids,
    "PHONE": _phones,
    "BANK_CARD": _bank_cards,
    "EMAIL": _emails,
    "IP": _ips,
    "PASSPORT": _passports,
    "IBAN": _ibans,
    "US_SSN": _us_ssns,
}
