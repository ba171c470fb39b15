"""POST /api/counterfactual answers with the library's numbers, refuses bad edits cleanly (4xx, the one
error shape) and keeps its answer as a run of kind counterfactual, masked."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from attnscope.render.counterfactual import counterfactual_answer
from attnscope.server.app import create_app
from attnscope.server.host import ModelHost
from attnscope.store.runs import RunsStore
from tests.conftest import tiny
from tests.server.conftest import assert_same, loader

TEXT = "The capital of France is"
CHINESE = "我爱中国，他的首都在于"
PHONE = "13812345678"


@pytest.mark.parametrize(
    ("text", "request_options", "library_options"),
    [
        (
            TEXT,
            {"edits": [{"replace": "France", "with": "Germany"}], "top_k": 5},
            {"edits": [{"replace": "France", "with": "Germany"}], "top_k": 5},
        ),
        (
            CHINESE,
            {"edits": [{"replace": "他", "with": "她"}], "method": "none", "layer": 0, "head": 1},
            {"edits": [{"replace": "他", "with": "她"}], "method": "none", "layer": 0, "head": 1},
        ),
        (
            "The doctor said that he",
            {"swap": "gender", "method": "attention", "head": [0, 2], "top_heads": 3},
            {"swap": "gender", "method": "attention", "head": [0, 2], "top_heads": 3},
        ),
        (
            TEXT,
            {"edits": [{"insert": "old ", "at": "before:capital"}, {"delete": " is"}], "query": 1},
            {"edits": [{"insert": "old ", "at": "before:capital"}, {"delete": " is"}], "query": 1},
        ),
    ],
    ids=["replace", "chinese", "swap", "insert-delete-query"],
)
def test_the_answer_is_the_librarys(client, text, request_options, library_options):
    response = client.post("/api/counterfactual", json={"text": text, **request_options})
    assert response.status_code == 200, response.text
    shown = response.json()
    edits = library_options.pop("edits", ())
    expected = counterfactual_answer(tiny("qwen2"), text, edits, **library_options)
    assert_same(shown, expected)
    assert shown["result"] == "counterfactual" and shown["original"]["text"] == text
    assert [p["method"] for p in shown["provenance"]] == ["counterfactual", "counterfactual"]


def test_every_edit_form_reaches_the_library(client):
    body = client.post(
        "/api/counterfactual",
        json={
            "text": "he said he was here and there",
            "edits": [
                {"replace": "he", "with": "she", "occurrence": "last"},
                {"remove": "here", "words": True},
                {"insert": "!", "at": 29},
            ],
            "method": "none",
        },
    ).json()
    assert body["counterfactual"]["text"] == "he said she was  and there!"
    assert [(c["old"], c["new"]) for c in body["changes"]] == [("he", "she"), ("here", ""), ("", "!")]


BAD = [
    ({"edits": [{"replace": "Spain", "with": "Italy"}]}, 400, "does not occur"),
    ({"edits": [{"replace": "capital of", "with": "x"}, {"replace": "of France", "with": "y"}]}, 400, "overlap"),
    ({"edits": [{"replace": "is", "with": "is"}]}, 400, "changes nothing"),
    ({"edits": [{"insert": "x", "at": 99}]}, 400, "out of range"),
    ({"edits": [{"replace": "France", "with": "Spain"}], "layer": 99}, 400, "layer"),
    ({"edits": [{"replace": "France", "with": "Spain"}], "head": 99}, 400, "head"),
    ({"edits": [{"replace": "France", "with": "Spain"}], "query": 15}, 400, "changed by the edit"),
    ({"swap": "gender"}, 400, "no term of the gender swap table"),
    ({}, 422, "at least one edit or a swap"),
    ({"swap": "race"}, 422, "swap"),
    ({"edits": [{"change": "France"}]}, 422, "an edit is"),
    ({"edits": [{"replace": "France"}]}, 422, "with"),
    ({"edits": [{"replace": "France", "with": "x", "occurrence": 0}]}, 422, "occurrence"),
    ({"edits": [{"insert": "x", "at": "middle"}]}, 422, "at"),
    ({"edits": [{"replace": "France", "with": "x", "colour": 1}]}, 422, "colour"),
    ({"edits": [{"replace": "France", "with": "x"}] * 33}, 422, "edits"),
    ({"edits": [{"replace": "x" * 10_001, "with": "y"}]}, 422, "replace"),
    ({"swap": "gender", "head": "all"}, 422, "not all"),
    ({"swap": "gender", "method": "magic"}, 422, "unknown attribution method"),
    ({"swap": "gender", "top_k": 51}, 422, "top_k"),
    ({"swap": "gender", "layer": "x"}, 422, "layer"),
]


@pytest.mark.parametrize(("extra", "status", "words"), BAD)
def test_bad_requests_are_refused_in_the_one_shape(client, extra, status, words):
    response = client.post("/api/counterfactual", json={"text": TEXT, **extra})
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"detail", "code"} and words in body["detail"]


def test_a_text_left_empty_is_refused(client):
    response = client.post("/api/counterfactual", json={"text": "France", "edits": [{"delete": "France"}]})
    assert response.status_code == 400 and "no text" in response.json()["detail"]


def test_the_run_is_kept_listed_and_masked(tmp_path):
    host = ModelHost(loader=loader)
    host.store = RunsStore(tmp_path)
    host.load("tiny:qwen2")
    client = TestClient(create_app(host), raise_server_exceptions=False)
    text = f"我的电话是{PHONE}，他的首都在于"
    edits = [{"replace": "他", "with": "她"}, {"replace": "5678", "with": "0000", "words": False}]
    shown = client.post("/api/counterfactual", json={"text": text, "edits": edits, "method": "grad-x-input"}).json()
    assert shown["original"]["text"] == text  # the local page gets the text the user gave
    runs = client.get("/api/runs", params={"kind": "counterfactual"}).json()
    assert [run["id"] for run in runs["runs"]] == [shown["run_id"]]
    assert runs["runs"][0]["summary"].startswith("replace '[PHONE]' → '[PHONE]' (+1 more): top ")
    kept = client.get(f"/api/runs/{shown['run_id']}").json()["answer"]
    host.store.close()
    stored = b"".join(path.read_bytes() for path in sorted(tmp_path.rglob("*")) if path.is_file())
    for value in (PHONE, "13812340000"):  # the number before and after the edit
        assert value.encode() not in stored and value not in json.dumps(kept, ensure_ascii=False)
    assert kept["original"]["text"] == "我的电话是[PHONE]，他的首都在于"
    assert kept["counterfactual"]["text"] == "我的电话是[PHONE]，她的首都在于"
    assert [(c["old"], c["new"]) for c in kept["changes"]] == [("[PHONE]", "[PHONE]"), ("他", "她")]
    assert [e.get("old") for e in kept["edits"]] == ["他", "[PHONE]"]
    masked = [t for t in kept["original"]["tokens"] if t["id"] == -1]
    assert masked and all(t["text"] == "[PHONE]" for t in masked)
    # the numbers stay; every record says what was masked and hashes its own masked text
    assert kept["attention"]["original"] == shown["attention"]["original"]
    records = kept["provenance"] + kept["attribution"]["provenance"]
    assert all(r["masking_policy"] == "mask" and r["masked_spans"] >= 2 for r in records)
    assert records[0]["text_sha256"] != records[1]["text_sha256"]
    assert records[0]["text_sha256"] == records[2]["text_sha256"] != shown["provenance"][0]["text_sha256"]
