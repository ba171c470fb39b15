"""Rules over HTTP: a check answers the library's own report (``rules_json(check_rules(...))`` computed
here on the same model and text), validation names each problem's line (written out by hand below),
bad bodies get the one error shape, and every check is logged in the runs store under the run it
read — with personal data masked in the database's bytes."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from attnscope.analysis.rule_file import example_names, example_text, parse_rules
from attnscope.capture import capture
from attnscope.capture.generation import generate
from attnscope.capture.tokens import Part
from attnscope.governance.rules import check_rules
from attnscope.render.rules import rules_json
from attnscope.server.app import create_app
from attnscope.server.host import ModelHost
from attnscope.server.routes.analyze import TRACE_TOP_K
from attnscope.server.schemas_audit import MAX_RULES_CHARS
from attnscope.store.runs import RunsStore
from tests.conftest import CHINESE, ENGLISH, tiny
from tests.server.conftest import loader

PHONE = "13812345678"
VOLATILE = {"provenance", "trace_id", "run_id", "logged", "pii"}  # the server's own additions and record


def rules_for(word: str) -> str:
    """Rules on a text holding ``word``: one that fails (critical), one that passes, one that reads
    a word the text lacks (not evaluated) and one on the answer's attention to ``word``."""
    return f"""version: 1
rules:
  - name: sink-heavy
    from: {{answer: true}}
    to: {{class: first}}
    measure: mass
    comparison: ">="
    threshold: 0.999
    severity: critical
  - name: sink-bounded
    from: {{answer: true}}
    to: {{class: first}}
    aggregation: max
    measure: max
    comparison: "<="
    threshold: 1.0
    severity: info
  - name: absent
    from: {{answer: true}}
    to: {{text: "nowhere-to-be-found"}}
    measure: mass
    comparison: "<="
    threshold: 0.5
  - name: reads-word
    from: {{answer: true}}
    to: {{text: "{word}"}}
    layers: all
    aggregation: min
    measure: rank
    comparison: "<="
    threshold: 3
"""


@pytest.fixture
def stored(tmp_path) -> Iterator[tuple[ModelHost, TestClient]]:
    host = ModelHost(loader=loader)
    host.store = RunsStore(tmp_path)
    host.load("tiny:qwen2")
    yield host, TestClient(create_app(host), raise_server_exceptions=False)
    host.store.close()


def without(body: dict, keys: set[str] = VOLATILE) -> dict:
    return {key: value for key, value in body.items() if key not in keys}


def database_bytes(folder) -> bytes:
    return b"".join(path.read_bytes() for path in sorted(folder.glob("runs.sqlite3*")))


def test_the_examples_are_the_shipped_files(client):
    body = client.get("/api/rules/examples").json()
    assert [e["name"] for e in body] == example_names() and {"basic", "medical-en", "medical-zh"} <= set(
        example_names()
    )
    assert all(e["text"] == example_text(e["name"]) for e in body)


@pytest.mark.parametrize(("text", "word"), [(ENGLISH, "France"), (CHINESE, "中国")])
def test_a_check_is_the_librarys_report_on_the_same_capture(stored, text, word):
    _, client = stored
    rules = rules_for(word)
    response = client.post("/api/rules/check", json={"text": text, "rules": rules})
    assert response.status_code == 200, response.text
    body = response.json()
    model = tiny("qwen2")
    expected = rules_json(check_rules(model, capture(model, text, top_k=TRACE_TOP_K), parse_rules(rules)))
    assert without(body) == without(expected)  # every value, where, note and summary: the same numbers
    assert [r["passed"] for r in body["results"]] == [False, True, None, True]
    assert body["results"][0]["where"]["tokens"] == [{"index": 0, "text": text[0]}]  # class first: position 0
    assert body["summary"]["critical_failed"] == 1 and body["summary"]["not_evaluated"] == 1
    assert body["rules_file"]["sha256"] == hashlib.sha256(rules.encode()).hexdigest()
    assert body["text"] == text and body["pii"] == []


def test_a_check_after_an_analysis_reads_its_trace(client):
    analysis = client.post("/api/analyze", json={"text": ENGLISH}).json()
    body = client.post("/api/rules/check", json={"text": ENGLISH, "rules": rules_for("France")}).json()
    assert body["trace_id"] == analysis["trace_id"]  # the cached capture: the model did not run again


def test_a_check_with_generate_checks_every_step(stored):
    _, client = stored
    rules = rules_for("France")
    body = client.post(
        "/api/rules/check", json={"text": ENGLISH, "rules": rules, "generate": {"max_new_tokens": 4}}
    ).json()
    model = tiny("qwen2")
    trace = generate(model, ENGLISH, max_new_tokens=4, candidates=TRACE_TOP_K)
    expected = rules_json(check_rules(model, trace, parse_rules(rules)))
    assert without(body) == without(expected)
    assert len(body["generation"]["steps"]) == 4
    heavy, bounded = body["results"][:2]
    assert [s["step"] for s in heavy["steps"]] == [0, 1, 2, 3] and heavy["passed"] is False
    assert heavy["value"] == min(s["value"] for s in heavy["steps"])  # a >= rule: its worst step is its lowest
    assert bounded["value"] == max(s["value"] for s in bounded["steps"]) and bounded["passed"] is True
    # the stored run is the generation, and the log rows name each result's worst step
    run = client.get(f"/api/runs/{body['run_id']}").json()["run"]
    assert run["kind"] == "generation"
    logged = client.get(f"/api/runs/{body['run_id']}/rules").json()["rows"]
    assert {r["rule"]: r["where"]["step"] for r in logged} == {r["rule"]: r["where"]["step"] for r in body["results"]}


def test_a_check_on_a_kept_generation_reads_that_generation(client):
    made = client.post("/api/generate", json={"text": ENGLISH, "max_new_tokens": 3}).json()
    text = made["prompt"]["text"] + made["generated"]["text"]
    body = client.post(
        "/api/rules/check", json={"text": text, "rules": rules_for("France"), "trace_id": made["trace_id"]}
    ).json()
    assert body["trace_id"] == made["trace_id"]
    assert [s["token"]["id"] for s in body["generation"]["steps"]] == [s["token"]["id"] for s in made["steps"]]
    other = client.post(
        "/api/rules/check", json={"text": ENGLISH, "rules": rules_for("x"), "trace_id": made["trace_id"]}
    )
    assert other.status_code == 400 and "another text" in other.json()["detail"]


def test_validate_names_each_problem_with_its_line(client):
    schema_broken = """version: 1
rules:
  - name: a
    from: {answer: true}
    to: {class: first}
    measure: mass
    comparison: "=="
    threshold: 0.5
"""
    body = client.post("/api/rules/validate", json={"rules": schema_broken}).json()
    assert body["ok"] is False and body["rules"] == [] and body["sha256"] is None
    assert [(p["line"], p["path"]) for p in body["problems"]] == [(7, "rules[0].comparison")]
    twice = """version: 1
rules:
  - name: a
    from: {answer: true}
    to: {class: first}
    measure: mass
    comparison: ">="
    threshold: 0.5
  - name: a
    from: {regex: "("}
    to: {class: first}
    measure: attribution:no-such-method
    comparison: ">="
    threshold: 0.5
"""
    problems = client.post("/api/rules/validate", json={"rules": twice}).json()["problems"]
    assert sorted((p["line"], p["path"]) for p in problems) == [(9, "rules[1].name"), (10, "rules[1].from")]
    assert all(set(p) == {"path", "line", "message"} for p in problems)
    unknown = twice.replace('name: a\n    from: {regex: "("}', "name: b\n    from: {answer: true}")
    problems = client.post("/api/rules/validate", json={"rules": unknown}).json()["problems"]
    assert [(p["line"], p["path"]) for p in problems] == [(9, "rules[1].measure")] and "no-such-method" in str(problems)
    valid = rules_for("France")
    body = client.post("/api/rules/validate", json={"rules": valid}).json()
    assert body["ok"] is True and body["problems"] == []
    assert body["sha256"] == hashlib.sha256(valid.encode()).hexdigest()
    assert [r["name"] for r in body["rules"]] == ["sink-heavy", "sink-bounded", "absent", "reads-word"]


@pytest.mark.parametrize(
    "rules",
    [
        "",
        "[",
        "\x00\x01",
        "[" * 20_000,
        "{" * 20_000,
        "- " * 5000 + "x",
        "version: 1\nrules: 3",
        "a: !!python/object:os.system x",
    ],
)
def test_validate_answers_every_text(client, rules):
    response = client.post("/api/rules/validate", json={"rules": rules})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["ok"] is False and body["problems"] and all(p["message"] for p in body["problems"])


BAD = [
    ({"text": ENGLISH}, 422, "rules"),
    ({"text": ENGLISH, "rules": 3}, 422, "rules"),
    ({"text": ENGLISH, "rules": "version: 1\n" + "#" * MAX_RULES_CHARS}, 422, "rules"),
    ({"text": ENGLISH, "rules": rules_for("x").replace('">="', '"=="', 1)}, 422, "rules: line 7: rules[0].comparison"),
    ({"text": ENGLISH, "rules": rules_for("x"), "generate": {"max_new_tokens": 300}}, 422, "max_new_tokens"),
    (
        {"text": ENGLISH, "rules": rules_for("x"), "generate": {"max_new_tokens": 2, "temperature": 0.5}},
        422,
        "do_sample",
    ),
    ({"text": ENGLISH, "rules": rules_for("x"), "trace_id": "0" * 16, "generate": {}}, 422, "trace_id"),
    ({"text": ENGLISH, "rules": rules_for("x"), "trace_id": "0" * 16}, 404, "trace"),
    ({"text": ENGLISH, "rules": rules_for("x"), "head": "all"}, 422, "head"),
    ({"text": ENGLISH, "rules": rules_for("x"), "system": "Be brief."}, 422, "chat"),
    ({"text": ENGLISH, "rules": rules_for("x"), "colour": "red"}, 422, "colour"),
    ({"text": " ", "rules": rules_for("x")}, 422, "text"),
]


@pytest.mark.parametrize(("payload", "status", "words"), BAD)
def test_bad_bodies_are_refused_in_the_one_shape(client, payload, status, words):
    response = client.post("/api/rules/check", json=payload)
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"detail", "code"} and words in body["detail"]


def test_an_over_long_rules_text_is_refused_by_validate_too(client):
    response = client.post("/api/rules/validate", json={"rules": "#" * (MAX_RULES_CHARS + 1)})
    assert response.status_code == 422 and set(response.json()) == {"detail", "code"}


def test_an_encoder_decoder_is_refused_clearly(host, client):
    host.load("tiny:t5")
    response = client.post("/api/rules/check", json={"text": ENGLISH, "rules": rules_for("France")})
    assert response.status_code == 400
    assert response.json()["code"] == "unsupported" and "encoder-decoder" in response.json()["detail"]


def test_every_check_is_logged_under_its_run(stored, tmp_path):
    _, client = stored
    rules = rules_for("France")
    sha = hashlib.sha256(rules.encode()).hexdigest()
    body = client.post("/api/rules/check", json={"text": ENGLISH, "rules": rules}).json()
    assert body["logged"] == 4 and body["run_id"]
    run = client.get(f"/api/runs/{body['run_id']}").json()
    assert run["run"]["kind"] == "analysis" and run["answer"]["text"] == ENGLISH
    log = client.get(f"/api/runs/{body['run_id']}/rules").json()
    assert log["run_id"] == body["run_id"] and len(log["rows"]) == 4
    by_rule = {row["rule"]: row for row in log["rows"]}
    for result in body["results"]:
        row = by_rule[result["rule"]]
        assert (row["value"], row["passed"], row["severity"]) == (result["value"], result["passed"], result["severity"])
        assert row["rules_sha256"] == sha and row["run_id"] == body["run_id"]
    with sqlite3.connect(tmp_path / "runs.sqlite3") as db:  # what is on disk, read directly
        rows = db.execute("SELECT run_id, rules_sha256, rule, passed FROM rule_log ORDER BY id").fetchall()
    expected = [
        (body["run_id"], sha, r["rule"], None if r["passed"] is None else int(r["passed"])) for r in body["results"]
    ]
    assert rows == expected
    again = client.post("/api/rules/check", json={"text": ENGLISH, "rules": rules}).json()
    assert again["run_id"] != body["run_id"]  # each check keeps the run it read and logs under it
    assert len(client.get(f"/api/runs/{body['run_id']}/rules").json()["rows"]) == 4


def test_the_rule_log_of_a_run_that_is_not_there(stored, client):
    _, with_store = stored
    assert with_store.get("/api/runs/0123456789abcdef/rules").status_code == 404
    assert with_store.get("/api/runs/not-an-id/rules").status_code == 422
    response = client.get("/api/runs/0123456789abcdef/rules")  # this server keeps no runs
    assert response.status_code == 400 and "no runs" in response.json()["detail"]
    body = client.post("/api/rules/check", json={"text": ENGLISH, "rules": rules_for("France")}).json()
    assert body["run_id"] is None and body["logged"] == 0 and len(body["results"]) == 4


def test_personal_data_stays_out_of_the_database(stored, tmp_path):
    host, client = stored
    text = f"请拨打{PHONE}联系我。他的首都在于"
    rules = """version: 1
rules:
  - name: reads-phone
    description: the answer reads the caller's number
    from: {answer: true}
    to: {class: pii}
    measure: mass
    comparison: ">="
    threshold: 0.99
  - name: reads-digits
    from: {answer: true}
    to: {regex: "\\\\d{11}"}
    measure: max
    comparison: ">="
    threshold: 0.99
    severity: critical
"""
    body = client.post("/api/rules/check", json={"text": text, "rules": rules}).json()
    assert body["text"] == text  # the local page gets the text as given, and where personal data is
    assert [(p["start"], p["end"], p["label"]) for p in body["pii"]] == [(3, 14, "[PHONE]")]
    failed = [r for r in body["results"] if r["passed"] is False]
    assert len(failed) == 2 and all(PHONE in r["counterfactual"]["edits"][0]["remove"] for r in failed)
    assert any(PHONE[:4] in t["text"] or t["text"] in PHONE for r in failed for t in r["where"]["tokens"] if t["text"])
    logged = client.get(f"/api/runs/{body['run_id']}/rules").json()["rows"]
    assert len(logged) == 2 and PHONE not in str(logged)
    assert all(
        t["text"] in ("[PHONE]", "…", "") or PHONE[:3] not in t["text"] for r in logged for t in r["where"]["tokens"]
    )
    assert all(r["counterfactual"]["edits"][0]["remove"] == "[PHONE]" for r in logged)
    host.store.close()
    assert PHONE.encode() not in database_bytes(tmp_path)
    stored_bytes = b"".join(p.read_bytes() for p in sorted(tmp_path.rglob("*")) if p.is_file())
    assert PHONE.encode() not in stored_bytes and PHONE[3:7].encode() + PHONE[7:].encode() not in stored_bytes


def test_a_chat_and_named_parts_are_what_role_and_part_rules_read(client):
    rules = """version: 1
rules:
  - name: reads-system
    from: {answer: true}
    to: {role: system}
    measure: mass
    comparison: ">="
    threshold: 0.1
  - name: reads-country
    from: {answer: true}
    to: {part: country}
    measure: mass
    comparison: "<="
    threshold: 0.5
"""
    system = "Answer in French."
    body = client.post(
        "/api/rules/check", json={"text": ENGLISH, "rules": rules, "chat": True, "system": system}
    ).json()
    model = tiny("qwen2")
    messages = [{"role": "system", "content": system}, {"role": "user", "content": ENGLISH}]
    trace = capture(model, None, messages=messages, top_k=TRACE_TOP_K)
    expected = rules_json(check_rules(model, trace, parse_rules(rules)))
    assert without(body) == without(expected) and body["text"] == trace.text != ENGLISH
    assert body["results"][0]["passed"] is not None and body["results"][1]["passed"] is None  # no part named
    start = ENGLISH.index("France")
    parts = [{"name": "country", "start": start, "end": start + len("France")}]
    body = client.post("/api/rules/check", json={"text": ENGLISH, "rules": rules, "parts": parts}).json()
    plain = capture(model, ENGLISH, top_k=TRACE_TOP_K)
    expected = rules_json(check_rules(model, plain, parse_rules(rules), parts=[Part("country", start, start + 6)]))
    assert without(body) == without(expected)
    assert body["results"][0]["passed"] is None and body["results"][1]["passed"] is not None
    assert [t["text"] for t in body["results"][1]["where"]["tokens"]] == list("France")


def one_rule(to: str = "{class: first}", threshold: str = "0.5", name: str = "r", measure: str = "mass") -> str:
    return f"""version: 1
rules:
  - name: {name}
    from: {{answer: true}}
    to: {to}
    measure: {measure}
    comparison: "<="
    threshold: {threshold}
    severity: critical
"""


@pytest.mark.parametrize(
    ("rules", "line", "words"),
    [
        (one_rule(threshold="1" + "0" * 400), 8, "threshold must be a finite number"),
        (one_rule(threshold="1" + "0" * 5000), 8, "too long to read"),
        (one_rule(threshold="2001-13-45"), 8, "not a valid timestamp"),
        (one_rule(to='{regex: "a{99999999999999999999}"}'), 5, "does not compile"),
        (one_rule(to='{regex: "' + "(" * 5000 + ")" * 5000 + '"}'), 5, "does not compile"),
        (one_rule(measure="attribution:attention") + "    options: &o {again: *o}\n", 10, "an alias refers"),
        ('{"version": 1, "rules": [' + "[" * 990 + "]" * 990 + "]}", None, "nested too deeply"),
    ],
)
def test_validate_reports_numbers_regexes_and_shapes_that_python_cannot_take(client, rules, line, words):
    response = client.post("/api/rules/validate", json={"rules": rules})
    assert response.status_code == 200, response.text  # was a 500
    (problem,) = response.json()["problems"]
    assert problem["line"] == line and words in problem["message"]
    refused = client.post("/api/rules/check", json={"text": ENGLISH, "rules": rules})
    assert refused.status_code == 422 and words in refused.json()["detail"]


def test_a_regex_that_backtracks_for_ever_answers_in_time_as_not_evaluated(client):
    text = "a" * 40 + "!"
    rules = one_rule(to='{regex: "(a|aa)+$"}') + one_rule(name="fine").split("rules:\n")[1]
    response = client.post("/api/rules/check", json={"text": text, "rules": rules})
    assert response.status_code == 200, response.text
    stopped, fine = response.json()["results"]
    assert stopped["passed"] is None and stopped["value"] is None
    assert stopped["note"] == 'regex "(a|aa)+$": the regex took longer than 1 s on this text'
    assert fine["passed"] is not None and response.json()["summary"]["critical_not_evaluated"] == 1


def test_personal_data_absent_from_the_text_gets_no_attention(client):
    body = client.post("/api/rules/check", json={"text": ENGLISH, "rules": one_rule("{class: pii}", "0.05")}).json()
    (result,) = body["results"]
    assert (result["value"], result["passed"], result["note"]) == (0.0, True, "no tokens of class pii in this text")
    assert body["summary"]["critical_not_evaluated"] == 0 and body["pii"] == []


def test_a_rule_named_after_personal_data_is_logged_masked(stored, tmp_path):
    host, client = stored
    body = client.post("/api/rules/check", json={"text": ENGLISH, "rules": one_rule(name=f"phone-{PHONE}")}).json()
    assert body["results"][0]["rule"] == f"phone-{PHONE}"  # the local page gets the rule as written
    (row,) = client.get(f"/api/runs/{body['run_id']}/rules").json()["rows"]
    assert row["rule"] == "phone-[PHONE]"
    with sqlite3.connect(tmp_path / "runs.sqlite3") as db:
        assert db.execute("SELECT rule FROM rule_log").fetchall() == [("phone-[PHONE]",)]
    host.store.close()
    assert PHONE.encode() not in database_bytes(tmp_path)
