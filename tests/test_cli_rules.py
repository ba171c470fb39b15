"""``attnscope rules``: check (exit 1 when a critical rule fails, 2 for errors), validate, examples."""

from __future__ import annotations

import json

import numpy as np
import pytest

from attnscope.capture import capture
from attnscope.cli.main import main
from tests.conftest import tiny
from tests.test_cli import run

RULES = """\
version: 1
rules:
  - name: sink-is-small
    from: {answer: true}
    to: {class: first}
    layers: all
    measure: mass
    comparison: "<="
    threshold: {sink}
    severity: critical
  - name: reads-france
    from: {answer: true}
    to: {text: France}
    measure: mass
    comparison: ">="
    threshold: 0.0
    severity: info
"""
TEXT = "The capital of France is"


def write(tmp_path, text, name="rules.yaml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def check(capsys, *args):
    status = main(["rules", "check", *args, "--model", "tiny:llama", "--quiet"])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


@pytest.fixture(scope="module")
def sink_mass():
    trace = capture(tiny("llama"), TEXT, backend="full")
    weights = np.stack([trace.attention(layer) for layer in range(trace.num_layers())]).astype(np.float64)
    return float(weights[:, :, -1, 0].mean())  # the last row's weight on position 0, mean over layers and heads


def test_a_failing_critical_rule_exits_1_and_the_json_has_the_contract(tmp_path, capsys, sink_mass):
    path = write(tmp_path, RULES.replace("{sink}", f"{sink_mass - 0.01:.6f}"))
    status, out, _ = check(capsys, "--rules", path, TEXT, "--json")
    body = json.loads(out)
    assert status == 1
    assert body["result"] == "rules" and body["rules_file"]["path"] == path and len(body["rules_file"]["sha256"]) == 64
    assert set(body) >= {"model", "text", "tokens", "results", "summary", "provenance"}
    sink, france = body["results"]
    assert sink["rule"] == "sink-is-small" and sink["passed"] is False and sink["severity"] == "critical"
    assert sink["value"] == pytest.approx(sink_mass, abs=1e-6) and sink["where"]["tokens"] == [
        {"index": 0, "text": body["tokens"][0]["text"]}
    ]
    assert set(sink["where"]) == {"layer", "head", "step", "tokens", "rows"} and sink["where"]["step"] is None
    assert france["passed"] is True
    assert body["summary"] == {
        "total": 2, "passed": 1, "failed": 1, "not_evaluated": 0, "critical_failed": 1, "critical_not_evaluated": 0
    }  # fmt: skip
    assert body["provenance"]["text_sha256"] and body["provenance"]["model_spec"] == "tiny:llama"
    # the same rules passing: exit 0, and the table says it
    passing = write(tmp_path, RULES.replace("{sink}", f"{sink_mass + 0.01:.6f}"), "pass.yaml")
    status, out, _ = check(capsys, "--rules", passing, TEXT)
    assert status == 0 and "sink-is-small" in out and "pass" in out and "FAIL" not in out


def test_generation_rules_report_each_step_and_the_exit_status_reaches_the_shell(tmp_path, capsys):
    path = write(tmp_path, RULES.replace("{sink}", "0.0"))
    status, out, _ = check(capsys, "--rules", path, TEXT, "--generate", "3", "--json")
    body = json.loads(out)
    assert status == 1 and len(body["generation"]["steps"]) == 3
    sink = body["results"][0]
    assert [s["step"] for s in sink["steps"]] == [0, 1, 2] and sink["where"]["step"] in (0, 1, 2)
    done = run("rules", "check", "--rules", path, TEXT, "--model", "tiny:llama", "--quiet")
    assert done.returncode == 1 and b"FAIL" in done.stdout


def test_strict_fails_critical_rules_that_could_not_be_evaluated(tmp_path, capsys):
    path = write(tmp_path, RULES.replace("{sink}", "1.0").replace("to: {class: first}", "to: {part: document}"))
    status, out, _ = check(capsys, "--rules", path, TEXT)
    assert status == 0 and "n/a" in out and "no part named 'document'" in out
    assert check(capsys, "--rules", path, TEXT, "--strict")[0] == 1
    status, out, _ = check(capsys, "--rules", path, TEXT, "--part", "document=capital", "--json")
    assert status == 0 and json.loads(out)["results"][0]["passed"] is True


def test_chat_roles_are_parts(tmp_path, capsys):
    path = write(tmp_path, RULES.replace("{sink}", "1.0").replace("to: {class: first}", "to: {role: system}"))
    status, out, _ = check(capsys, "--rules", path, "Hello?", "--chat", "--system", "Be brief.", "--json")
    result = json.loads(out)["results"][0]
    assert status == 0 and result["passed"] is True
    assert "".join(t["text"] for t in result["where"]["tokens"]).strip() == "Be brief."


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--rules", "missing.yaml", TEXT], "does not exist"),
        (["--rules", "example:nope", TEXT], "no example rule file 'nope'"),
        (["--rules", "{bad}", TEXT], ":8: rules[0].comparison: comparison must be one of"),
        (["--rules", "{method}", TEXT], "unknown method 'nope'"),
        (["--rules", "example:basic", TEXT, "--system", "x"], "--system is for --chat"),
        (["--rules", "example:basic", TEXT, "--generate", "0"], "--generate must be a whole number"),
    ],
)
def test_errors_exit_2_in_one_line_before_the_model_loads(tmp_path, capsys, args, message):
    bad = write(tmp_path, RULES.replace('"<="', '"=<"'), "bad.yaml")
    nope = RULES.replace("{sink}", "0.5").replace("measure: mass", "measure: attribution:nope", 1)
    method = write(tmp_path, nope, "m.yaml")
    args = [a.replace("{bad}", bad).replace("{method}", method) for a in args]
    status = main(["rules", "check", *args, "--model", "tiny:nope", "--quiet"])
    err = capsys.readouterr().err
    assert status == 2 and message in err and err.count("\n") == 1 and "tiny:nope" not in err


def test_validate_explains_each_problem_with_its_line(tmp_path, capsys):
    good = write(tmp_path, RULES.replace("{sink}", "0.5"))
    assert main(["rules", "validate", good]) == 0
    assert "valid: 2 rules (sink-is-small, reads-france)" in capsys.readouterr().out
    bad = write(
        tmp_path, RULES.replace("{sink}", ".nan").replace("name: reads-france", "name: sink-is-small"), "b.yaml"
    )
    assert main(["rules", "validate", bad]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        f"{bad}:9: rules[0].threshold: threshold must be a finite number; got nan",
        f"{bad}:11: rules[1].name: name 'sink-is-small' is taken by rules[0] (line 3)",
    ]
    assert main(["rules", "validate", bad, "--json"]) == 1
    body = json.loads(capsys.readouterr().out)
    assert body["valid"] is False and body["problems"][0] == {
        "path": "rules[0].threshold", "line": 9, "message": "threshold must be a finite number; got nan", "file": None
    }  # fmt: skip
    assert main(["rules", "validate", str(tmp_path / "none.yaml")]) == 2


def test_examples_are_listed_and_printed(capsys):
    assert main(["rules", "examples"]) == 0
    out = capsys.readouterr().out
    assert "example:basic" in out and "example:medical-zh" in out
    assert main(["rules", "examples", "medical-zh"]) == 0
    assert "阿司匹林" in capsys.readouterr().out
