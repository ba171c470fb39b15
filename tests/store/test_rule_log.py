"""The rule log in the runs database: rows per rule result, token texts masked as the run's stored
answer masks them, deleted with their run, and an older database migrated to it without losing runs.
Token places are found here with ``str.find`` on values written in the test."""

from __future__ import annotations

import hashlib
import sqlite3

import pytest

from attnscope.capture import capture
from attnscope.errors import InputError, NotFoundError
from attnscope.governance.privacy import mask_strings
from attnscope.render.json import analysis_json
from attnscope.store.database import SCHEMA_VERSION
from attnscope.store.rule_log import log_rules, rule_log
from attnscope.store.runs import RunsStore
from tests.conftest import tiny

PHONE = "13812345678"
TEXT = f"请拨打{PHONE}联系我。The capital of France is"
RULES = hashlib.sha256(b"version: 1\nrules: []\n").hexdigest()


def database_bytes(folder) -> bytes:
    return b"".join(path.read_bytes() for path in sorted(folder.glob("runs.sqlite3*")))


def result(name: str, tokens: list[tuple[int, str]], passed: bool | None, step: int | None = None) -> dict:
    return {
        "rule": name, "severity": "critical", "value": 0.25, "threshold": 0.1, "comparison": ">=",
        "passed": passed, "where": {"layer": 1, "head": 0, "step": step,
                                    "tokens": [{"index": i, "text": t} for i, t in tokens]},
    }  # fmt: skip


def test_results_are_logged_with_the_runs_masking(tmp_path):
    trace = capture(tiny("qwen2"), TEXT)
    start = TEXT.find(PHONE)
    # (a zero-width byte piece belongs to the character before it: the last piece of 拨打 starts at the number)
    inside = [t for t in trace.tokens if t.start is not None and start <= t.start < start + len(PHONE)]
    inside = [t for t in inside if t.end > t.start]
    plain = [t for t in trace.tokens if t.start is not None and t.start >= TEXT.find("France")]
    with RunsStore(tmp_path) as store:
        run = store.put(kind="analysis", text=TEXT, model={}, result=analysis_json(trace), origin="library")
        raw = [(t.index, t.text) for t in inside + plain]
        added = log_rules(store, RULES, [result("reads-phone", raw, False), result("ok", raw[-1:], True, 3)],
                          run_id=run.id)  # fmt: skip
        assert added == 2
        logged = rule_log(store, run_id=run.id)
        assert [r["rule"] for r in logged] == ["ok", "reads-phone"]  # newest first (one insert: by id)
        phone_row = logged[1]
        texts = {t["index"]: t["text"] for t in phone_row["where"]["tokens"]}
        assert all(texts[t.index] == "[PHONE]" for t in inside) and all(texts[t.index] == t.text for t in plain)
        assert phone_row["passed"] is False and phone_row["rules_sha256"] == RULES and phone_row["run_id"] == run.id
        assert logged[0]["where"]["step"] == 3
        with sqlite3.connect(tmp_path / "runs.sqlite3") as db:
            assert db.execute("SELECT passed, step FROM rule_log ORDER BY id").fetchall() == [(0, None), (1, 3)]
        # without a run: a value split over tokens is found in their texts joined
        pieces = [(0, "请拨打"), (1, PHONE[:3]), (2, PHONE[3:7]), (3, PHONE[7:])]
        log_rules(store, RULES, [result("loose", pieces, None)])
        loose = rule_log(store)[0]
        assert loose["run_id"] is None and loose["passed"] is None
        assert [t["text"] for t in loose["where"]["tokens"]] == ["请拨打", "[PHONE]", "[PHONE]", "[PHONE]"]
        assert PHONE.encode() not in database_bytes(tmp_path)
        for piece in (PHONE[3:7], PHONE[7:]):
            assert f'"text": "{piece}"'.encode() not in database_bytes(tmp_path)
        store.delete(run.id)  # its rows go with it; the loose row stays
        assert rule_log(store, run_id=run.id) == [] and len(rule_log(store)) == 1


def test_bad_rows_are_refused_and_change_nothing(tmp_path):
    with RunsStore(tmp_path) as store:
        with pytest.raises(InputError, match="SHA-256"):
            log_rules(store, "abc", [result("x", [], True)])
        with pytest.raises(InputError, match="not a rule result"):
            log_rules(store, RULES, [result("x", [], True), {**result("y", [], True), "severity": "fatal"}])
        with pytest.raises(NotFoundError, match="no stored run"):
            log_rules(store, RULES, [result("x", [], True)], run_id="0123456789abcdef")
        assert rule_log(store) == []


def test_a_version_1_database_is_migrated_with_its_runs(tmp_path):
    with RunsStore(tmp_path) as store:
        run = store.put(kind="analysis", text="kept", model={}, result={"result": "analysis"}, origin="library")
    with sqlite3.connect(tmp_path / "runs.sqlite3") as db:  # as attnscope with one migration left it
        db.execute("DROP TABLE rule_log")
        db.execute("UPDATE schema_version SET version = 1")
    with RunsStore(tmp_path) as store:
        assert store.get(run.id).text == "kept"
        log_rules(store, RULES, [result("x", [], True)], run_id=run.id)
        assert len(rule_log(store, run_id=run.id)) == 1
    with sqlite3.connect(tmp_path / "runs.sqlite3") as db:
        assert db.execute("SELECT version FROM schema_version").fetchone() == (SCHEMA_VERSION,) == (2,)


def test_a_rule_named_after_personal_data_is_logged_masked(tmp_path):
    with RunsStore(tmp_path) as store:
        named = {**result(f"phone-{PHONE}", [], False), "description": f"call {PHONE}", "to": {"text": PHONE}}
        log_rules(store, RULES, [named])
        (row,) = rule_log(store)
        assert (row["rule"], row["description"], row["to"]) == ("phone-[PHONE]", "call [PHONE]", {"text": "[PHONE]"})
        with sqlite3.connect(tmp_path / "runs.sqlite3") as db:  # the column, read directly
            assert db.execute("SELECT rule FROM rule_log").fetchall() == [("phone-[PHONE]",)]
    assert PHONE.encode() not in database_bytes(tmp_path)


def test_every_string_of_a_nested_value_is_masked_by_one_helper():
    value = {"edits": [{"remove": f"拨打{PHONE}", "start": 3}], "spans": ((3, 14),), "kept": "France", 7: None}
    masked = mask_strings(value)
    assert masked == {"edits": [{"remove": "拨打[PHONE]", "start": 3}], "spans": [[3, 14]], "kept": "France", 7: None}
    assert value["edits"][0]["remove"] == f"拨打{PHONE}"  # the value given is not changed
    assert mask_strings([f"x {PHONE}"], "hash")[0].startswith("x [PHONE:")  # the policies of mask_text
