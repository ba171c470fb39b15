"""Rule files: the shipped schema and examples, and every problem reported with its line."""

from __future__ import annotations

import json

import pytest

from attnscope.analysis.rule_file import (
    check_rules_file,
    check_rules_text,
    example_names,
    example_text,
    load_example,
    load_rules,
    parse_rules,
    rules_from_data,
    schema,
)
from attnscope.errors import InputError
from attnscope.methods.rules import method_problems

GOOD = """\
version: 1
rules:
  - name: answer-reads-system
    description: the answer attends to the system prompt
    from: {part: system}
    to: {text: "The"}
    layers: [20, 21, 22, 23]
    heads: all
    aggregation: mean
    measure: mass
    comparison: ">="
    threshold: 0.10
    severity: critical
"""


def problems_of(text: str, **options) -> list[tuple[int | None, str, str]]:
    rule_set, problems = check_rules_text(text, **options)
    assert (rule_set is None) == bool(problems)
    return [(p.line, p.path, p.message) for p in problems]


def test_the_issue_format_reads_as_written():
    rule_set = parse_rules(GOOD, name="rules.yaml")
    (rule,) = rule_set.rules
    assert (rule.name, rule.measure, rule.comparison, rule.threshold, rule.severity) == (
        "answer-reads-system",
        "mass",
        ">=",
        0.10,
        "critical",
    )
    assert rule.source.kind == "part" and rule.source.value == "system"
    assert rule.target is not None and rule.target.to_json() == {"text": "The"}
    assert rule.layers == [20, 21, 22, 23] and rule.heads is None and rule.line == 3
    assert rule.should_attend and rule_set.path == "rules.yaml" and len(rule_set.sha256) == 64
    # defaults: every layer and head, mean, warning; a rule written back reads the same
    minimal = rules_from_data(
        {"version": 1, "rules": [{"name": "r", "from": {"answer": True}, "to": {"class": "first"}, "measure": "max",
                                  "comparison": "<=", "threshold": 0.9}]}
    )  # fmt: skip
    again = minimal.rules[0]
    assert (again.layers, again.heads, again.aggregation, again.severity) == ("all", None, "mean", "warning")
    assert rules_from_data({"version": 1, "rules": [again.to_json()]}).rules[0].to_json() == again.to_json()


def test_schema_errors_say_their_line_and_path():
    bad = GOOD.replace('comparison: ">="', 'comparison: "=>"').replace(
        "    heads: all\n", "    heads: all\n    colour: red\n"
    )
    found = problems_of(bad)
    assert (9, "rules[0].colour", found[0][2]) == found[0] and "unknown key 'colour'" in found[0][2]
    assert found[1][:2] == (12, "rules[0].comparison") and '">="' in found[1][2]
    missing = problems_of(GOOD.replace("    measure: mass\n", ""))
    assert missing == [(3, "rules[0]", "missing key 'measure'")]
    assert problems_of(GOOD.replace("version: 1", "version: 2"))[0][:2] == (1, "version")
    assert problems_of(GOOD.replace("threshold: 0.10", "threshold: high"))[0][:2] == (12, "rules[0].threshold")
    assert problems_of(GOOD.replace("layers: [20, 21, 22, 23]", "layers: 20-x"))[0][:2] == (7, "rules[0].layers")
    assert "missing key 'to'" in problems_of(GOOD.replace('    to: {text: "The"}\n', ""))[0][2]
    assert problems_of("version: 1\nrules: []\n") == [(2, "rules", "rules must be a non-empty list of rules")]


def test_what_the_schema_cannot_say_is_checked_with_lines_too():
    text = """\
version: 1
lexicons: {drug: [aspirin]}
rules:
  - {name: a, from: {text: x}, to: {lexicon: drugs}, measure: mass, comparison: ">=", threshold: .nan}
  - name: a
    from: {class: first}
    to: {regex: "(unclosed"}
    measure: entropy
    comparison: "<"
    threshold: 1
  - name: c
    from: {steps: [3, 1], occurrence: first}
    to: {part: doc, ignore_case: true}
    measure: mass
    comparison: "<"
    threshold: .inf
    options: {steps: 4}
"""
    found = problems_of(text)
    messages: dict[tuple[int | None, str], str] = {}
    for line, path, message in found:
        messages[(line, path)] = messages.get((line, path), "") + message + "; "
    assert "no lexicon named 'drugs'" in messages[(4, "rules[0].to")]
    assert "finite" in messages[(4, "rules[0].threshold")]
    assert "taken by rules[0] (line 4)" in messages[(5, "rules[1].name")]
    assert "belongs in 'to'" in messages[(6, "rules[1].from")]
    assert "does not compile" in messages[(7, "rules[1].to")]
    assert "entropy measures the whole row" in messages[(7, "rules[1].to")]
    assert "occurrence is for" in messages[(12, "rules[2].from")]
    assert "ignore_case is for" in messages[(13, "rules[2].to")]
    assert "options are for attribution" in messages[(17, "rules[2].options")]
    assert "finite" in messages[(16, "rules[2].threshold")]


def test_yaml_and_json_problems_have_lines_and_keys_written_twice_are_refused(tmp_path):
    assert problems_of("version: 1\nrules:\n  - name: [\n")[0][0] == 4
    twice = problems_of(GOOD.replace("    severity: critical\n", "    severity: critical\n    threshold: 0.2\n"))
    assert twice == [(14, "", "key 'threshold' is written twice (first on line 12)")]
    data = json.loads(json.dumps(parse_rules(GOOD).rules[0].to_json()))
    data["comparison"] = "=="
    text = json.dumps({"version": 1, "rules": [data]}, indent=2)
    line = next(n for n, row in enumerate(text.splitlines(), 1) if '"comparison"' in row)
    path = tmp_path / "rules.json"
    path.write_text(text, encoding="utf-8")
    _, problems = check_rules_file(path)
    assert [(p.line, p.path) for p in problems] == [(line, "rules[0].comparison")]
    assert problems_of('{"version": 1,\n "rules": [}', json_file=True)[0][0] == 2
    assert "written twice" in problems_of('{"version": 1, "version": 1, "rules": []}', json_file=True)[0][2]
    nan = json.dumps({"version": 1, "rules": [{**data, "comparison": "<", "threshold": float("nan")}]})
    assert "finite" in problems_of(nan, json_file=True)[0][2]


def test_files_are_refused_in_one_line(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        load_rules(tmp_path / "missing.yaml")
    with pytest.raises(InputError, match="is not a file"):
        load_rules(tmp_path)
    (tmp_path / "latin1.yaml").write_bytes(b"version: 1\n# caf\xe9\n")
    with pytest.raises(InputError, match="not UTF-8"):
        load_rules(tmp_path / "latin1.yaml")
    (tmp_path / "two.yaml").write_text(GOOD.replace("=", "?") + "  - name: x\n", encoding="utf-8")
    with pytest.raises(InputError) as refused:
        load_rules(tmp_path / "two.yaml")
    message = str(refused.value)
    assert "\n" not in message and message.startswith(f"{tmp_path / 'two.yaml'}:") and "more problems" in message


def test_lexicons_may_live_in_their_own_file_beside_the_rules(tmp_path):
    (tmp_path / "terms.yaml").write_text("drug: [aspirin, 阿司匹林]\nside_effect: [nausea]\n", encoding="utf-8")
    rules = GOOD.replace('to: {text: "The"}', "to: {lexicon: drug}").replace(
        "rules:\n", "lexicons: terms.yaml\nrules:\n", 1
    )
    (tmp_path / "rules.yaml").write_text(rules, encoding="utf-8")
    rule_set = load_rules(tmp_path / "rules.yaml")
    assert rule_set.lexicons == {"drug": ("aspirin", "阿司匹林"), "side_effect": ("nausea",)}
    (tmp_path / "terms.yaml").write_text("drug: [aspirin]\nside_effect: nausea\n", encoding="utf-8")
    _, problems = check_rules_file(tmp_path / "rules.yaml")
    assert [(p.file, p.line, p.path) for p in problems] == [(str(tmp_path / "terms.yaml"), 2, "side_effect")]
    # a rule text without a file (the HTTP API) may not make the process read a path
    assert "needs a rule file on disk" in problems_of(rules)[0][2]


def test_attribution_methods_are_checked_against_the_catalogue():
    text = GOOD.replace("measure: mass", "measure: attribution:nope")
    assert "unknown method 'nope'" in method_problems(parse_rules(text))[0].message
    text = GOOD.replace("measure: mass", "measure: attribution:grad-x-input\n    options: {colour: 1}")
    assert method_problems(parse_rules(text))[0].path == "rules[0].options"
    fine = GOOD.replace("measure: mass", "measure: attribution:integrated-gradients\n    options: {steps: 8}")
    assert method_problems(parse_rules(fine)) == []


def test_the_shipped_schema_and_examples():
    assert schema()["$schema"].endswith("2020-12/schema")
    assert set(example_names()) >= {"basic", "medical-en", "medical-zh"}
    for name in example_names():
        rule_set = load_example(name)
        assert rule_set.path == f"example:{name}" and rule_set.rules and method_problems(rule_set) == []
    basic = {rule.name: rule for rule in load_example("basic").rules}
    assert basic["answer-reads-system"].layers == (-4, -1) and basic["answer-reads-system"].target.kind == "role"
    sink = basic["no-sink-beyond-layer-2"]
    assert (sink.layers, sink.aggregation, sink.measure, sink.target.value) == ((3, -1), "max", "max", "first")
    assert basic["pii-not-read"].target.value == "pii" and basic["answer-uses-document"].method == "grad-x-input"
    zh = load_example("medical-zh")
    assert "阿司匹林" in zh.lexicons["drug"] and "副作用" in example_text("medical-zh")
    with pytest.raises(InputError, match="examples: basic"):
        example_text("nope")


def test_numbers_too_large_and_regexes_that_cannot_compile_are_problems_with_their_lines():
    huge = "1" + "0" * 400  # an integer beyond a float's range: float() raises OverflowError
    finite = "threshold must be a finite number; got an integer beyond a float's range"
    assert problems_of(GOOD.replace("threshold: 0.10", f"threshold: {huge}")) == [(12, "rules[0].threshold", finite)]
    data = {"version": 1, "rules": [{**parse_rules(GOOD).rules[0].to_json(), "threshold": 0}]}
    text = json.dumps(data, indent=2).replace('"threshold": 0', f'"threshold": {huge}')
    line = next(n for n, row in enumerate(text.splitlines(), 1) if '"threshold"' in row)
    assert problems_of(text, json_file=True) == [(line, "rules[0].threshold", finite)]
    with pytest.raises(InputError, match="finite number"):
        parse_rules(GOOD.replace("threshold: 0.10", f"threshold: {huge}"))
    # more digits than Python converts to an int at all (4,300): refused where they are written
    longer = "1" + "0" * 5000
    assert "too long to read" in problems_of(GOOD.replace("threshold: 0.10", f"threshold: {longer}"))[0][2]
    assert problems_of(GOOD.replace("threshold: 0.10", f"threshold: {longer}"))[0][0] == 12
    found = problems_of(text.replace(huge, longer), json_file=True)
    assert found[0][0] == line and "5,001 digits" in found[0][2]
    assert "too long to read" in problems_of(GOOD.replace("[20, 21, 22, 23]", f'"{longer}-2"'))[0][2]
    # a repeat count beyond any index (OverflowError in re), nesting deeper than the compiler recurses
    for pattern in ("a{99999999999999999999}", "(" * 5000 + ")" * 5000):
        found = problems_of(GOOD.replace('to: {text: "The"}', f'to: {{regex: "{pattern}"}}'))
        assert [(p[0], p[1]) for p in found] == [(6, "rules[0].to")] and "does not compile" in found[0][2]
        assert len(found[0][2]) < 200  # one line, the pattern shortened
    # what validates is what runs: the regex package's syntax (Unicode properties, POSIX classes)
    for pattern in (r"\\p{Han}+", "[[:digit:]]+"):
        assert problems_of(GOOD.replace('to: {text: "The"}', f'to: {{regex: "{pattern}"}}')) == []


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("2001-13-45", "'2001-13-45' is not a valid timestamp (month must be in 1..12)"),  # a date, to YAML
        ("!!float abc", "'abc' is not a valid float (could not convert string to float: 'abc')"),
        ("!!bool maybe", "'maybe' is not a valid bool"),
    ],
)
def test_scalars_yaml_cannot_read_are_problems_at_their_line(value, message):
    found = problems_of(GOOD.replace("threshold: 0.10", f"threshold: {value}"))
    assert found == [(12, "", f"not valid YAML: {message}")]


def nested_yaml(levels: int) -> str:
    return "".join("  " * level + "a:\n" for level in range(levels)) + "  " * levels + "b: 1\n"


@pytest.mark.parametrize(
    ("text", "json_file"),
    [
        ("[" * 10_000 + "]" * 10_000, False),
        ("[" * 10_000 + "]" * 10_000, True),
        ('{"a": ' * 10_000 + "1" + "}" * 10_000, False),
        ('{"a": ' * 10_000 + "1" + "}" * 10_000, True),
        (nested_yaml(10_000), False),
        ("- " * 10_000 + "x", False),
        ('{"version": 1, "rules": [' + "[" * 900 + "]" * 900 + "]}", True),  # json reads it; the schema recursed
    ],
)
def test_files_nested_ten_thousand_levels_deep_are_one_problem(text, json_file):
    found = problems_of(text, json_file=json_file)
    assert len(found) == 1 and "nested too deeply" in found[0][2]


def with_options(options: str) -> str:
    """GOOD with ``options: OPTIONS`` on its line 14 (the schema reads options as any mapping)."""
    return GOOD.replace("    severity: critical\n", f"    severity: critical\n    options: {options}\n")


def test_nesting_aliases_of_aliases_and_aliases_inside_themselves_are_refused_with_lines():
    shape = "not valid YAML for a rule file: "
    deep = with_options("{a: " + "[" * 100 + "]" * 100 + "}")
    assert problems_of(deep) == [(14, "", shape + "nested too deeply (more than 64 levels)")]
    # "billion laughs": one line that expands to 10**9 values wherever the data is walked or written
    laughs = "{x0: &x0 [x, x, x, x, x, x, x, x, x, x], " + ", ".join(
        f"x{n}: &x{n} [{', '.join([f'*x{n - 1}'] * 10)}]" for n in range(1, 9)
    ) + "}"  # fmt: skip
    assert problems_of(with_options(laughs)) == [(14, "", shape + "aliases expand this to more than 1,000,000 values")]
    assert problems_of(with_options("&o {again: *o}")) == [(14, "", shape + "an alias refers to a value that holds it")]
    # aliases that only reuse a value are fine
    again = GOOD.split("rules:\n")[1].replace("answer-reads-system", "again").replace('to: {text: "The"}', "to: *the")
    reuse = GOOD.replace('to: {text: "The"}', 'to: &the {text: "The"}') + again
    assert [rule.target.to_json() for rule in parse_rules(reuse).rules] == [{"text": "The"}] * 2
