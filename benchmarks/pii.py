"""Precision and recall of personal-data detection (``attnscope.governance.pii.find_pii``) per kind.

A labelled corpus is generated with a fixed seed: values from Faker (``zh_CN`` resident IDs, mobile
numbers, e-mail addresses, card numbers, IPv4/IPv6; ``en_US`` card numbers, e-mail addresses, SSNs,
IBANs), values built here where Faker's are not real numbers (Chinese landlines; US phone numbers:
about half of Faker's ``en_US`` numbers have unassigned area codes; 19-digit UnionPay cards;
passports), and near-miss negatives built here: resident IDs with a wrong check digit, with an
impossible birth date (but a right check digit), one digit short; Luhn-invalid card numbers;
mobile-like numbers with prefixes 10/11/12 or a digit short (Chinese text), US-like numbers with an
area code 1xx or no area code (English text); 999.1.1.1-like addresses; passport shapes with no
passport keyword nearby, or one digit short; amounts, dates, and order numbers of 10-24 digits
(which the Luhn check alone lets through as cards one time in ten when 13-19 digits long). All are
embedded in Chinese and English template sentences, some with full-width digits. Labels come from
the construction, never from the detector; check digits are computed here (ISO 7064 MOD 11-2, Luhn).

A found span counts as a true positive only if its start, end and kind equal a label's. Phone numbers
are read with ``regions=("CN",)`` in Chinese sentences and ``("CN", "US")`` in English ones (what a
deployment would configure), then once more with find_pii's default ``("CN",)`` everywhere.

Usage: python benchmarks/pii.py [--sentences 4000] [--seed 13] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import re
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import version

KINDS = ("CN_ID", "PHONE", "BANK_CARD", "EMAIL", "IP", "PASSPORT", "IBAN", "US_SSN")


@dataclass
class Sample:
    text: str
    lang: str  # "zh" or "en"
    gold: list[tuple[int, int, str, str]] = field(default_factory=list)  # (start, end, kind, source)
    negatives: list[tuple[int, int, str]] = field(default_factory=list)  # (start, end, category)


# -- check digits, written here independently of the library under test ---------------------------


def mod11_2_check(first17: str) -> str:
    """GB 11643 / ISO 7064 MOD 11-2 check character of a resident ID's first 17 digits."""
    weights = [2 ** (17 - i) % 11 for i in range(17)]
    total = sum(int(d) * w for d, w in zip(first17, weights, strict=True))
    return "10X98765432"[total % 11]


def luhn_check(body: str) -> str:
    """The Luhn digit that makes ``body + digit`` valid."""
    total = 0
    for i, digit in enumerate(reversed(body)):
        value = int(digit) * (2 if i % 2 == 0 else 1)
        total += value - 9 if value > 9 else value
    return str((10 - total % 10) % 10)


def full_width(value: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if c.isascii() and c.isalnum() else c for c in value)


# -- values ----------------------------------------------------------------------------------------

CN_AREAS = ("010", "020", "021", "022", "023", "024", "025", "027", "028", "029", "0755", "0571", "0512", "0532")
US_AREAS = ("206", "212", "213", "305", "312", "404", "415", "503", "512", "602", "617", "646", "702", "713", "919")
# Faker en_US card types, all but the 12-digit "maestro" (cards are 13-19 digits here)
CARD_TYPES = ("mastercard", "visa16", "visa13", "visa19", "amex", "discover", "diners", "jcb15", "jcb16")
PASSPORT_LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"
MOBILE_FORMS = ("{n}", "{n}", "{n1} {n2} {n3}", "{n1}-{n2}-{n3}", "+86 {n}", "+86 {n1} {n2} {n3}", "0086{n}")


class Values:
    """Positive values ``(text, kind, source)`` and negatives ``(text, category)``."""

    def __init__(self, seed: int) -> None:
        from faker import Faker

        self.rng = random.Random(seed)
        self.zh, self.en = Faker("zh_CN"), Faker("en_US")
        self.zh.seed_instance(seed)
        self.en.seed_instance(seed + 1)

    def digits(self, n: int) -> str:
        return "".join(self.rng.choice("0123456789") for _ in range(n))

    def positive(self, kind: str, lang: str) -> tuple[str, str]:
        rng, faker = self.rng, self.zh if lang == "zh" else self.en
        if kind == "CN_ID":
            value = self.zh.ssn()
            return (full_width(value), "full-width") if rng.random() < 0.1 else (value, "faker zh_CN")
        if kind == "PHONE":
            return self.phone(lang)
        if kind == "BANK_CARD":
            if lang == "zh" and rng.random() < 0.3:  # a 19-digit UnionPay debit card (Faker's are 16)
                body = "62" + self.digits(16)
                number, source = body + luhn_check(body), "UnionPay 19"
            elif lang == "zh":  # unionpay, visa or mastercard
                number, source = self.zh.credit_card_number(), "faker zh_CN"
            else:
                number, source = self.en.credit_card_number(card_type=rng.choice(CARD_TYPES)), "faker en_US"
            if len(number) in (16, 19) and rng.random() < 0.4:
                number = rng.choice(" -").join(number[i : i + 4] for i in range(0, len(number), 4))
            return number, source
        if kind == "EMAIL":
            return (faker.free_email() if rng.random() < 0.5 else faker.email()), f"faker {lang}"
        if kind == "IP":
            return (faker.ipv6(), "IPv6") if rng.random() < 0.4 else (faker.ipv4(), "IPv4")
        if kind == "PASSPORT":
            form = rng.randrange(3)
            if form == 2:
                return "E" + rng.choice(PASSPORT_LETTERS) + self.digits(7), "E+letter+7"
            return "EG"[form] + self.digits(8), "EG"[form] + "+8"
        if kind == "IBAN":
            return self.en.iban(), "faker en_US"
        if kind == "US_SSN":
            return self.en.ssn(), "faker en_US"
        raise ValueError(kind)

    def phone(self, lang: str) -> tuple[str, str]:
        rng = self.rng
        if lang == "en":
            area, exchange = rng.choice(US_AREAS), str(rng.randint(2, 9)) + self.digits(2)
            if exchange[1:] == "11":
                exchange = exchange[0] + "20"
            line = self.digits(4)
            form = rng.choice(("({a}) {e}-{l}", "{a}-{e}-{l}", "{a}.{e}.{l}", "+1 {a}-{e}-{l}", "+1 ({a}) {e}-{l}"))
            return form.format(a=area, e=exchange, l=line), "US"
        if rng.random() < 0.3:
            area, local = rng.choice(CN_AREAS), str(rng.randint(2, 8)) + self.digits(7)
            form = rng.choice(("{a}-{n}", "({a}){n}", "{a} {n1} {n2}", "+86 {a1} {n1} {n2}"))
            value = form.format(a=area, a1=area[1:], n=local, n1=local[:4], n2=local[4:])
            return value, "CN landline"
        number = self.zh.phone_number()
        form = rng.choice(MOBILE_FORMS)
        value = form.format(n=number, n1=number[:3], n2=number[3:7], n3=number[7:])
        return (full_width(value), "full-width") if rng.random() < 0.1 else (value, "CN mobile")

    def negative(self, lang: str) -> tuple[str, str, str]:
        """(value, category, the kind it imitates)."""
        rng = self.rng
        category = rng.choice(NEGATIVES[lang])
        if category == "ID wrong check digit":
            value = self.zh.ssn()
            return value[:17] + rng.choice([c for c in "0123456789X" if c != value[17]]), category, "CN_ID"
        if category == "ID impossible date":
            body = self.zh.ssn()[:6] + rng.choice(("19901301", "19850230", "20010431", "19770000", "18991231")) + "123"
            return body + mod11_2_check(body), category, "CN_ID"
        if category == "ID 17 digits":
            return self.zh.ssn()[:17], category, "CN_ID"
        if category == "card wrong Luhn digit":
            number = self.en.credit_card_number(card_type=rng.choice(CARD_TYPES))
            return number[:-1] + str((int(number[-1]) + rng.randint(1, 9)) % 10), category, "BANK_CARD"
        if category == "mobile bad prefix":
            return "1" + rng.choice("012") + self.digits(9), category, "PHONE"
        if category == "mobile 10 digits":
            return self.zh.phone_number()[:10], category, "PHONE"
        if category == "US area code 1xx":  # no NANP area code starts with 1; nor is it a CN number
            area = str(rng.randint(12, 19)) + self.digits(1)
            return f"({area}) {rng.randint(2, 9)}{self.digits(2)}-{self.digits(4)}", category, "PHONE"
        if category == "US 7 digits":
            return f"{rng.randint(2, 9)}{self.digits(2)}-{self.digits(4)}", category, "PHONE"
        if category == "bad IPv4":
            return rng.choice(("999", "256", "300")) + f".{rng.randint(0, 255)}.{rng.randint(0, 255)}.1", category, "IP"
        if category == "passport no keyword":
            return "EG"[rng.randrange(2)] + self.digits(8), category, "PASSPORT_NO_KEYWORD"
        if category == "passport short":
            return "E" + self.digits(7), category, "PASSPORT"
        if category == "amount":
            amount = f"{rng.randint(1, 99_999_999):,}.{rng.randint(0, 99):02d}"
            return ("¥" if lang == "zh" else "$") + amount, category, "AMOUNT"
        if category == "date":
            y, m, d = rng.randint(1950, 2030), rng.randint(1, 12), rng.randint(1, 28)
            forms = (f"{y}-{m:02d}-{d:02d}", f"{y}/{m:02d}/{d:02d} 14:30", f"{y}年{m}月{d}日")
            return rng.choice(forms), category, "DATE"
        if category == "order number":
            return str(rng.randint(1, 9)) + self.digits(rng.randint(9, 23)), category, "ORDER"
        raise ValueError(category)


_SHARED_NEGATIVES = (
    "ID wrong check digit",
    "ID impossible date",
    "ID 17 digits",
    "card wrong Luhn digit",
    "bad IPv4",
    "passport no keyword",
    "passport short",
    "amount",
    "date",
    "order number",
)
# phone near-misses of each language's numbering plan ("12012345678" is a fine US number in English)
NEGATIVES = {
    "zh": (*_SHARED_NEGATIVES, "mobile bad prefix", "mobile 10 digits"),
    "en": (*_SHARED_NEGATIVES, "US area code 1xx", "US 7 digits"),
}
# the phone regions a deployment would configure for each language of text
REGIONS = {"zh": ("CN",), "en": ("CN", "US")}

TEMPLATES = {
    "zh": {
        "CN_ID": ("身份证号{}，请核对。", "公民身份号码：{}", "我的身份证是{}"),
        "PHONE": ("我的电话是{}，有事请联系。", "请拨打{}联系客服", "手机{}"),
        "BANK_CARD": ("请把款打到卡号{}上", "银行卡：{}，开户行北京分行", "信用卡{}已冻结"),
        "EMAIL": ("邮箱是{}谢谢", "请发邮件到{}。", "联系邮箱：{}"),
        "IP": ("服务器地址{}无法访问", "来自{}的登录请求", "IP：{}"),
        "PASSPORT": ("护照号码{}，有效期至2030年。", "他的护照号是{}", "护照：{}"),
        "PASSPORT_NO_KEYWORD": ("型号{}的零件已发货。", "批次{}已入库", "设备编号：{}"),
        "IBAN": ("收款账户IBAN：{}", "汇款至{}。"),
        "US_SSN": ("社会安全号码{}", "SSN：{}"),
        "AMOUNT": ("订单金额{}元", "共计{}。"),
        "DATE": ("日期{}", "于{}签订合同"),
        "ORDER": ("订单号{}", "快递单号：{}"),
    },
    "en": {
        "CN_ID": ("Her Chinese ID number is {}.", "ID: {}"),
        "PHONE": ("Call me at {} after six.", "Phone: {}", "You can reach the office on {}."),
        "BANK_CARD": ("Charge it to card {} please.", "Card number {} was declined.", "Pay with {}."),
        "EMAIL": ("Write to {} for details.", "Email: {}", "Contact {}."),
        "IP": ("The request came from {}.", "Server {} is down.", "IP address: {}"),
        "PASSPORT": ("Passport number {}, expires 2030.", "My passport no. is {}.", "passport: {}"),
        "PASSPORT_NO_KEYWORD": ("Part {} has shipped.", "Batch {} is in stock.", "Model {}."),
        "IBAN": ("Wire the money to {}.", "IBAN: {}"),
        "US_SSN": ("SSN {} is on file.", "Social security number: {}."),
        "AMOUNT": ("The total was {}.", "Amount due: {}"),
        "DATE": ("Signed on {}.", "Date: {}"),
        "ORDER": ("Order {} is on its way.", "Tracking number: {}"),
    },
}


def make_corpus(n_sentences: int, seed: int = 13) -> list[Sample]:
    """``n_sentences`` labelled sentences, half Chinese and half English, one to three values each."""
    values = Values(seed)
    rng = values.rng
    corpus = []
    for index in range(n_sentences):
        lang = "zh" if index % 2 == 0 else "en"
        sample = Sample("", lang)
        for part in range(rng.choice((1, 1, 2, 3))):
            if part:
                sample.text += "，" if lang == "zh" else " "
            if rng.random() < 0.65:
                kind = rng.choice(KINDS)
                value, source = values.positive(kind, lang)
                left, right = rng.choice(TEMPLATES[lang][kind]).split("{}")
                at = len(sample.text) + len(left)
                sample.gold.append((at, at + len(value), kind, source))
            else:
                value, category, imitates = values.negative(lang)
                left, right = rng.choice(TEMPLATES[lang][imitates]).split("{}")
                at = len(sample.text) + len(left)
                sample.negatives.append((at, at + len(value), category))
            sample.text += left + value + right
        corpus.append(sample)
    return corpus


# -- scoring ---------------------------------------------------------------------------------------


@dataclass
class Score:
    tp: Counter[str] = field(default_factory=Counter)
    fp: Counter[str] = field(default_factory=Counter)
    fn: Counter[str] = field(default_factory=Counter)
    fp_where: Counter[str] = field(default_factory=Counter)  # "KIND in <category or kind/source>"
    missed: Counter[str] = field(default_factory=Counter)  # "KIND/source"

    def precision(self, kind: str) -> float:
        found = self.tp[kind] + self.fp[kind]
        return self.tp[kind] / found if found else 1.0

    def recall(self, kind: str) -> float:
        wanted = self.tp[kind] + self.fn[kind]
        return self.tp[kind] / wanted if wanted else 1.0


Finder = Callable[[str, str], set[tuple[int, int, str]]]  # (text, lang) -> {(start, end, kind)}


def library_finder(regions: dict[str, tuple[str, ...]] | None = None) -> Finder:
    """find_pii; ``regions`` maps a language to its ``regions`` argument (None: find_pii's default)."""
    from attnscope.governance.pii import find_pii

    def find(text: str, lang: str) -> set[tuple[int, int, str]]:
        options = {} if regions is None else {"regions": regions[lang]}
        return {(span.start, span.end, span.kind) for span in find_pii(text, **options)}

    return find


# The baseline: what a hand-rolled masker does, the same kinds as bare patterns, no validation,
# no passport keyword, ASCII digits only; overlaps resolved longest first like find_pii.
NAIVE = {
    "CN_ID": r"(?<![0-9])[1-9][0-9]{16}[0-9Xx](?![0-9])",
    "BANK_CARD": r"(?<![0-9])(?:[0-9]{13,19}|[0-9]{4}(?:[ -][0-9]{4}){2,3}(?:[ -][0-9]{1,4})?)(?![0-9])",
    "PHONE": r"(?<![0-9])(?:(?:\+|00)86[ -]?)?(?:1[3-9][0-9](?:[ -]?[0-9]{4}){2}|0[1-9][0-9]{1,2}[ -][0-9]{7,8})"
    r"(?![0-9])|\+1 ?\(?[2-9][0-9]{2}\)?[ .-]?[0-9]{3}[ .-][0-9]{4}|\(?[2-9][0-9]{2}\)?[ .-][0-9]{3}[.-][0-9]{4}",
    "EMAIL": r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}",
    "IP": r"(?<![0-9.])(?:[0-9]{1,3}\.){3}[0-9]{1,3}(?![0-9])"
    r"|(?<![0-9A-Fa-f:])(?:[0-9A-Fa-f]{1,4}:){7}[0-9A-Fa-f]{1,4}",
    "PASSPORT": r"(?<![A-Za-z0-9])(?:[EG][0-9]{8}|E[A-Z][0-9]{7})(?![A-Za-z0-9])",
    "IBAN": r"(?<![A-Za-z0-9])[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?(?![A-Za-z0-9])",
    "US_SSN": r"(?<![0-9-])[0-9]{3}-[0-9]{2}-[0-9]{4}(?![0-9-])",
}


def naive_finder() -> Finder:
    patterns = {kind: re.compile(pattern) for kind, pattern in NAIVE.items()}

    def find(text: str, lang: str) -> set[tuple[int, int, str]]:
        candidates = [(m.start(), m.end(), kind) for kind, p in patterns.items() for m in p.finditer(text)]
        kept: list[tuple[int, int, str]] = []
        for start, end, kind in sorted(candidates, key=lambda c: (c[0] - c[1], KINDS.index(c[2]))):
            if all(end <= s or e <= start for s, e, _ in kept):
                kept.append((start, end, kind))
        return set(kept)

    return find


def score(corpus: list[Sample], finder: Finder) -> Score:
    """True and false positives and misses per kind (exact start, end and kind)."""
    result = Score()
    for sample in corpus:
        gold = {(start, end, kind): source for start, end, kind, source in sample.gold}
        found = finder(sample.text, sample.lang)
        for key, source in gold.items():
            if key in found:
                result.tp[key[2]] += 1
            else:
                result.fn[key[2]] += 1
                result.missed[f"{key[2]}/{source}"] += 1
        for start, end, kind in found - set(gold):
            result.fp[kind] += 1
            where = [cat for s, e, cat in sample.negatives if s < end and start < e]
            where += [f"{k}/{src} (partly)" for (s, e, k), src in gold.items() if s < end and start < e]
            result.fp_where[f"{kind} in {where[0] if where else 'other text'}"] += 1
    return result


def throughput(corpus: list[Sample], repeats: int) -> tuple[float, int]:
    from attnscope.governance.pii import find_pii

    texts = [sample.text for sample in corpus]
    find_pii(texts[0])  # warm-up: phonenumbers loads its metadata lazily
    chars = sum(map(len, texts))
    timings = []
    for _ in range(repeats):
        begin = time.perf_counter()
        for text in texts:
            find_pii(text)
        timings.append(time.perf_counter() - begin)
    return chars / statistics.median(timings), chars


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sentences", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    corpus = make_corpus(args.sentences, args.seed)
    libraries = ", ".join(f"{name} {version(name)}" for name in ("phonenumbers", "python-stdnum", "Faker"))
    print(f"# {platform.machine()}, {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, {libraries}")
    negatives = sum(len(s.negatives) for s in corpus)
    print(f"# {len(corpus)} sentences (seed {args.seed}), half Chinese, half English; {negatives} near-miss negatives")
    settings = {
        "find_pii, regions by language": library_finder(REGIONS),
        "find_pii, default regions": library_finder(None),
        "naive patterns (baseline)": naive_finder(),
    }
    results = {name: score(corpus, finder) for name, finder in settings.items()}
    print("\n| kind | labelled | " + " | ".join(f"{name}: P / R" for name in settings) + " |")
    print("|---|---:|" + "---:|" * len(settings))
    first = next(iter(results.values()))
    for kind in KINDS:
        cells = " | ".join(f"{r.precision(kind):.3f} / {r.recall(kind):.3f}" for r in results.values())
        print(f"| {kind} | {first.tp[kind] + first.fn[kind]} | {cells} |")
    for name, result in results.items():
        print(f"\n{name}\n  missed: {dict(result.missed.most_common()) or 'none'}")
        print(f"  false positives: {dict(result.fp_where.most_common()) or 'none'}")
    per_second, chars = throughput(corpus, args.repeats)
    passes = f"median of {args.repeats} passes over {chars:,} characters"
    print(f"\nfind_pii throughput: {per_second:,.0f} characters/s ({passes})")


if __name__ == "__main__":
    main()
