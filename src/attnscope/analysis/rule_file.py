"""Rule files: named rules about what a model attends to, read from YAML or JSON and checked.

A file is checked in two passes, and every problem is reported with its line (PyYAML's composed
nodes; see :mod:`.rule_source`): the JSON Schema shipped beside this module (``rules.schema.json``,
draft 2020-12) for its shape, then what a schema cannot say — one kind per selector, ``class`` only
in ``to``, regexes that compile, lexicons that exist, distinct names, finite thresholds, layer forms.
Regexes are compiled by the ``regex`` package, the engine that runs them (:mod:`.rule_spans`, with a
time limit), so a pattern that validates is one that runs.
:func:`check_rules_text` returns every problem; :func:`parse_rules` and :func:`load_rules` raise the
first as a one-line :class:`InputError`. What depends on the model or the text (a layer the model
lacks, a part the text has not) is found when the rules are evaluated (:mod:`.rules`).

``lexicons`` may be a path to a YAML or JSON file holding the mapping, relative to the rule file;
a rule text without a file (the HTTP API) cannot name one, so no request reads the server's files.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import regex

from attnscope.analysis.rule_source import SourceProblem, read_source
from attnscope.analysis.rule_types import CASE_KINDS, KINDS, OCCURRENCE_KINDS, Rule, RuleProblem, RuleSet, Selector
from attnscope.capture.selection import parse_layers
from attnscope.errors import InputError

SCHEMA_FILE = "rules.schema.json"
EXAMPLES = "rules_examples"  # the example rule files shipped beside this module
MAX_FILE_BYTES = 2_000_000


@functools.cache
def schema() -> dict[str, Any]:
    """The JSON Schema of a version-1 rule file (shipped in the package)."""
    text = resources.files("attnscope.analysis").joinpath(SCHEMA_FILE).read_text(encoding="utf-8")
    return dict(json.loads(text))


def _pointer(path: Sequence[str | int]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _schema_problems(data: Any, line_of: Any) -> list[RuleProblem]:
    from jsonschema import Draft202012Validator

    problems = []
    for error in Draft202012Validator(schema()).iter_errors(data):
        path = list(error.absolute_path)
        sub = error.schema if isinstance(error.schema, dict) else {}
        instance = error.instance
        if error.validator == "additionalProperties" and isinstance(instance, dict):
            known = sorted(sub.get("properties", {}))
            for key in sorted(set(instance) - set(known), key=str):
                message = f"unknown key {key!r}; known keys: {', '.join(known)}"
                problems.append(RuleProblem(_pointer([*path, key]), line_of([*path, key]), message))
            continue
        if error.validator == "required" and isinstance(instance, dict):
            missing = [key for key in error.validator_value if key not in instance]
            message = f"missing key {missing[0]!r}" if missing else error.message
            if missing == ["to"]:
                message += " (every measure but entropy needs it)"
        elif error.validator == "minProperties" and "text" in sub.get("properties", {}):
            message = f"a selector needs one of {', '.join(KINDS)}"
        elif "x-error" in sub:
            message = sub["x-error"]
        else:
            message = error.message
        problems.append(RuleProblem(_pointer(path), line_of(path), message))
    return problems


def _selector(data: dict[str, Any], side: str) -> tuple[Selector | None, str | None]:
    kinds = [kind for kind in KINDS if kind in data]
    if len(kinds) != 1:
        return None, f"a selector needs exactly one of {', '.join(KINDS)}; got {', '.join(kinds) or 'none'}"
    kind = kinds[0]
    if kind == "class" and side == "from":
        return None, "class selects keys: it belongs in 'to', not in 'from'"
    if "occurrence" in data and kind not in OCCURRENCE_KINDS:
        return None, f"occurrence is for {', '.join(OCCURRENCE_KINDS)} selectors, not {kind}"
    if "ignore_case" in data and kind not in CASE_KINDS:
        return None, f"ignore_case is for {', '.join(CASE_KINDS)} selectors, not {kind}"
    value = data[kind]
    if kind == "regex":
        error = regex_problem(value)
        if error:
            return None, f"regex {_quoted(value)} does not compile: {error}"
    if kind == "steps":
        first, last = value
        if (first >= 0) == (last >= 0) and first > last:
            return None, f"steps [{first}, {last}] is empty: the first step comes after the last"
        value = (first, last)
    return Selector(kind, value, data.get("occurrence", "all"), bool(data.get("ignore_case", False))), None


def regex_problem(pattern: str) -> str | None:
    """Why ``pattern`` does not compile in the ``regex`` package (what rules run), or None."""
    try:
        regex.compile(pattern)
    except regex.error as error:
        return str(error)
    except (OverflowError, ValueError) as error:  # a repeat count beyond any index
        return str(error) or "a number in it is too large"
    except RecursionError:
        return "nested too deeply"
    return None


def _quoted(value: str, limit: int = 80) -> str:
    """``value`` in quotes, its middle left out beyond ``limit`` characters (a problem is one line)."""
    return repr(value) if len(value) <= limit else repr(value[: limit // 2] + "…" + value[-limit // 2 :])


def _rule(
    data: dict[str, Any], index: int, lexicons: Mapping[str, Any] | None, line_of: Any
) -> tuple[Rule | None, list[RuleProblem]]:
    problems: list[RuleProblem] = []

    def problem(key: str, message: str) -> None:
        path: list[str | int] = ["rules", index, *([key] if key else [])]
        problems.append(RuleProblem(_pointer(path), line_of(path), message))

    selectors: dict[str, Selector | None] = {}
    for key, side in (("from", "from"), ("to", "to")):
        if key not in data:
            selectors[key] = None
            continue
        selector, error = _selector(data[key], side)
        if error:
            problem(key, error)
        elif (
            selector is not None
            and selector.kind == "lexicon"
            and lexicons is not None
            and selector.value not in lexicons
        ):
            known = ", ".join(sorted(lexicons)) or "none defined"
            problem(key, f"no lexicon named {selector.value!r} (lexicons: {known})")
        selectors[key] = selector
    try:
        threshold = float(data["threshold"])
        got = str(threshold)
    except OverflowError:  # an integer beyond a float's range (1 and 400 zeros)
        threshold, got = math.inf, "an integer beyond a float's range"
    if not math.isfinite(threshold):
        problem("threshold", f"threshold must be a finite number; got {got}")
    measure, _, method = str(data["measure"]).partition(":")
    if measure == "entropy" and "to" in data:
        problem("to", "entropy measures the whole row: leave out 'to'")
    if "options" in data and measure != "attribution":
        problem("options", "options are for attribution:METHOD measures")
    layers: Any = data.get("layers", "all")
    try:
        layers = parse_layers(layers)
    except InputError as error:
        problem("layers", str(error))
    except ValueError:  # a layer number of more digits than Python converts
        problem("layers", f"layers {_quoted(str(layers))}: a layer number is too long to read")
    heads = data.get("heads", "all")
    if problems or selectors["from"] is None:
        return None, problems
    rule = Rule(
        name=data["name"],
        source=selectors["from"],
        target=selectors["to"],
        measure=measure,
        comparison=data["comparison"],
        threshold=threshold,
        layers=layers,
        heads=None if heads == "all" else ([heads] if isinstance(heads, int) else list(heads)),
        aggregation=data.get("aggregation", "mean"),
        severity=data.get("severity", "warning"),
        description=data.get("description", ""),
        method=method or None,
        options=dict(data.get("options", {})),
        line=line_of(["rules", index]),
    )
    return rule, problems


def _lexicon_problems(data: Any, line_of: Any, prefix: list[str | int], file: str | None) -> list[RuleProblem]:
    """Each lexicon a non-empty list of terms under a name without spaces."""
    if not isinstance(data, dict):
        return [RuleProblem(_pointer(prefix), line_of(prefix), "lexicons are a mapping {NAME: [term, ...]}", file)]
    problems = []
    for name, terms in data.items():
        path = [*prefix, str(name)]
        if not isinstance(name, str) or not name or any(char.isspace() for char in name):
            problems.append(RuleProblem(_pointer(path), line_of(path), "a lexicon name is text without spaces", file))
        elif not isinstance(terms, list) or not terms or not all(isinstance(t, str) and t.strip() for t in terms):
            message = "a lexicon is a non-empty list of terms (non-blank text)"
            problems.append(RuleProblem(_pointer(path), line_of(path), message, file))
    return problems


def _lexicons(value: Any, base: Path | None, line_of: Any) -> tuple[dict[str, tuple[str, ...]], list[RuleProblem]]:
    if value is None:
        return {}, []
    if not isinstance(value, str):
        problems = _lexicon_problems(value, line_of, ["lexicons"], None)
        return ({}, problems) if problems else ({name: tuple(terms) for name, terms in value.items()}, [])
    line = line_of(["lexicons"])
    if base is None:
        return {}, [RuleProblem("lexicons", line, "a lexicon file needs a rule file on disk; write the terms inline")]
    path = (base / value).resolve()
    try:
        data, lines = read_source(_read(path, "lexicon file"), json_file=path.suffix.lower() == ".json")
    except InputError as error:
        return {}, [RuleProblem("lexicons", line, str(error))]
    except SourceProblem as error:
        return {}, [RuleProblem("", error.line, error.message, file=str(path))]
    problems = _lexicon_problems(data, lines, [], str(path))
    return ({}, problems) if problems else ({name: tuple(terms) for name, terms in data.items()}, [])


def check_rules_text(
    text: str, *, name: str = "<rules>", base: Path | None = None, json_file: bool | None = None
) -> tuple[RuleSet | None, list[RuleProblem]]:
    """``(rule set or None, problems)`` of a rule file's text (YAML, or JSON when ``json_file`` or
    ``name`` ends in ``.json``); ``base``: the folder that a lexicon file path is relative to."""
    sha256 = hashlib.sha256(text.encode("utf-8")).hexdigest()
    try:
        data, line_of = read_source(text, json_file=bool(json_file or name.lower().endswith(".json")))
    except SourceProblem as error:
        return None, [RuleProblem("", error.line, error.message)]
    if not isinstance(data, dict):
        return None, [RuleProblem("", line_of([]), "a rule file is a mapping with 'version' and 'rules'")]
    problems = _schema_problems(data, line_of)
    if problems:
        return None, sorted(problems, key=lambda p: (p.line or 0, p.path))
    lexicons, problems = _lexicons(data.get("lexicons"), base, line_of)
    known = None if problems else lexicons  # a broken lexicon is reported once, not by every rule naming it
    rules: list[Rule] = []
    seen: dict[str, int] = {}
    for index, item in enumerate(data["rules"]):
        rule, found = _rule(item, index, known, line_of)
        problems += found
        if item["name"] in seen:
            first = seen[item["name"]]
            where: list[str | int] = ["rules", index, "name"]
            message = f"name {item['name']!r} is taken by rules[{first}] (line {line_of(['rules', first])})"
            problems.append(RuleProblem(_pointer(where), line_of(where), message))
        seen.setdefault(item["name"], index)
        if rule is not None:
            rules.append(rule)
    if problems:
        return None, sorted(problems, key=lambda p: (p.file or "", p.line or 0, p.path))
    return RuleSet(
        tuple(rules), lexicons, sha256, None if name.startswith("<") else name, data.get("description", "")
    ), []


def parse_rules(
    text: str, *, name: str = "<rules>", base: Path | None = None, json_file: bool | None = None
) -> RuleSet:
    """The rule set of a rule file's text, or an :class:`InputError` naming the first problem's line."""
    rule_set, problems = check_rules_text(text, name=name, base=base, json_file=json_file)
    if problems:
        extra = len(problems) - 1
        more = f" (and {extra} more problem{'s' * (extra > 1)}: attnscope rules validate)" if extra else ""
        raise InputError(problems[0].describe(name) + more)
    assert rule_set is not None
    return rule_set


def rules_from_data(data: Mapping[str, Any]) -> RuleSet:
    """A rule set from plain data (a parsed file, or rules built in Python); lexicons inline only."""
    return parse_rules(json.dumps(data, ensure_ascii=False, allow_nan=True), json_file=True)


def _read(path: Path, what: str = "rule file") -> str:
    if not path.is_file():
        raise InputError(f"{what} {path} {'is not a file' if path.exists() else 'does not exist'}")
    data = path.read_bytes()
    if len(data) > MAX_FILE_BYTES:
        raise InputError(f"{what} {path} is {len(data):,} bytes; the limit is {MAX_FILE_BYTES:,}")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise InputError(f"{what} {path} is not UTF-8 text (byte {error.start})") from None


def check_rules_file(path: str | Path) -> tuple[RuleSet | None, list[RuleProblem]]:
    """:func:`check_rules_text` of a file (an unreadable file is an :class:`InputError`)."""
    file = Path(path)
    return check_rules_text(_read(file), name=str(file), base=file.resolve().parent)


def load_rules(path: str | Path) -> RuleSet:
    """The rule set of a YAML or JSON rule file; an :class:`InputError` names the first problem."""
    file = Path(path)
    return parse_rules(_read(file), name=str(file), base=file.resolve().parent)


def example_names() -> list[str]:
    """The names of the example rule files shipped in the package (``basic``, ``medical-en``, …)."""
    folder = resources.files("attnscope.analysis").joinpath(EXAMPLES)
    return sorted(item.name.removesuffix(".yaml") for item in folder.iterdir() if item.name.endswith(".yaml"))


def example_text(name: str) -> str:
    """The text of the shipped example rule file ``name``."""
    if name not in example_names():
        raise InputError(f"no example rule file {name!r}; examples: {', '.join(example_names())}")
    return resources.files("attnscope.analysis").joinpath(EXAMPLES, f"{name}.yaml").read_text(encoding="utf-8")


def load_example(name: str) -> RuleSet:
    """The rule set of the shipped example ``name`` (its ``path`` is ``example:NAME``)."""
    return parse_rules(example_text(name), name=f"example:{name}")
