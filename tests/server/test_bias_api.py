"""GET /api/bias/suites and POST /api/bias answer with the library's numbers (``bias --list --json``,
``bias --json``), refuse bad bodies and non-causal models in the one error shape, publish progress,
can be cancelled, and keep the answer as a run of kind bias with a one-line summary."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from attnscope.methods.bias_suites import list_suites, suite_names
from attnscope.render.bias import bias_answer, suites_json
from attnscope.server.app import create_app
from attnscope.server.host import ModelHost
from attnscope.store.runs import RunsStore
from tests.conftest import tiny
from tests.server.conftest import assert_same, loader

SUITE = "gender-occupation-zh"  # Chinese text, tags, one term role; 32 pairs: ~10 s on the tiny model
OPTIONS = {"resamples": 300, "seed": 7, "confidence": 0.9, "top": 3}


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    """A server that keeps runs, after one POST /api/bias: (client, host, the answer)."""
    host = ModelHost(loader=loader)
    host.store = RunsStore(tmp_path_factory.mktemp("runs"))
    host.load("tiny:qwen2")
    client = TestClient(create_app(host), raise_server_exceptions=False)
    response = client.post("/api/bias", json={"suite": SUITE, **OPTIONS, "progress_id": "bias-run"})
    assert response.status_code == 200, response.text
    yield client, host, response.json()
    host.store.close()


def test_the_suites_are_the_librarys(client):
    body = client.get("/api/bias/suites").json()
    assert body == suites_json(list_suites())
    assert body["result"] == "bias_suites" and [s["name"] for s in body["suites"]] == suite_names()
    zh = next(s for s in body["suites"] if s["name"] == "gender-occupation-zh")
    assert "她" in zh["description"] and zh["licence"] and zh["source"]


def test_the_answer_is_the_librarys(stored):
    _, _, shown = stored
    expected = bias_answer(tiny("qwen2"), SUITE, **OPTIONS)
    assert_same(shown, expected)
    assert shown["result"] == "bias" and shown["suite"]["name"] == SUITE
    assert shown["pairs"][0]["template"] == "这位护士说，" and shown["pairs"][0]["variants"][0]["continuation"] == "她"
    summary = shown["summary"]
    assert (summary["resamples"], summary["seed"], summary["confidence"]) == (300, 7, 0.9)
    assert all(len(heads["top"]) == 3 for heads in summary["heads"].values())
    options = shown["provenance"]["method_options"]
    assert shown["provenance"]["method"] == "bias" and options["suite_sha256"] == shown["suite"]["sha256"]


def test_the_progress_is_published(stored):
    client, _, shown = stored
    job = client.get("/api/jobs/bias-run").json()
    assert job["finished"] is True and job["done"] == job["total"] == 4 * len(shown["pairs"])  # scoring, attention


def test_the_run_is_kept_with_its_summary(stored):
    client, _, shown = stored
    runs = client.get("/api/runs", params={"kind": "bias"}).json()
    assert [run["id"] for run in runs["runs"]] == [shown["run_id"]]
    run = runs["runs"][0]
    assert run["kind"] == "bias" and run["text"] == SUITE and run["model_name"] == shown["model"]["name"]
    gap = shown["summary"]["gap"]["logprob"]
    assert run["summary"] == (
        f"{SUITE}: 32 pairs, gap log p {gap['mean']:+.2f} [{gap['low']:+.2f}, {gap['high']:+.2f}] (female − male)"
    )
    kept = client.get(f"/api/runs/{shown['run_id']}").json()["answer"]
    assert_same(kept, shown)  # the stored answer is the one given (the suite holds no personal data)
    assert kept["provenance"]["masking_policy"] == "mask"


BAD = [
    ({"suite": "no-such-suite"}, "unknown bias suite 'no-such-suite'; packaged suites: gender-occupation-en"),
    ({"suite": "/etc/passwd"}, "unknown bias suite"),  # never a path on the server's side
    ({}, "suite: Field required"),
    ({"suite": 3}, "suite"),
    ({"suite": SUITE, "resamples": 0}, "resamples"),
    ({"suite": SUITE, "resamples": 10_001}, "resamples"),
    ({"suite": SUITE, "seed": -1}, "seed"),
    ({"suite": SUITE, "seed": 1.5}, "seed"),
    ({"suite": SUITE, "confidence": 0.4}, "confidence"),
    ({"suite": SUITE, "confidence": 1}, "confidence"),
    ({"suite": SUITE, "top": 21}, "top"),
    ({"suite": SUITE, "layers": [0]}, "layers"),
    ({"suite": SUITE, "progress_id": "a b"}, "progress_id"),
    ({"suite": SUITE, "suite_json": {"name": "x"}}, "suite_json"),
]


@pytest.mark.parametrize(("body", "words"), BAD)
def test_bad_bodies_are_refused_in_the_one_shape(client, body, words):
    response = client.post("/api/bias", json=body)
    assert response.status_code == 422, response.text
    answer = response.json()
    assert set(answer) == {"detail", "code"} and answer["code"] == "invalid_request"
    assert words in answer["detail"]


@pytest.mark.parametrize("spec", ["tiny:bert", "tiny:t5"])
def test_a_model_that_is_not_a_causal_lm_is_refused(client, spec):
    assert client.post("/api/model", json={"spec": spec}).status_code == 200
    response = client.post("/api/bias", json={"suite": SUITE, "resamples": 10})
    assert response.status_code == 400, response.text
    answer = response.json()
    assert answer["code"] == "unsupported" and "bias probes needs a causal language model" in answer["detail"]


def test_a_cancelled_run_answers_409_and_is_not_kept(tmp_path):
    host = ModelHost(loader=loader)
    host.store = RunsStore(tmp_path)
    host.load("tiny:qwen2")
    client = TestClient(create_app(host), raise_server_exceptions=False)
    assert client.post("/api/jobs/bias-cancelled/cancel").json()["cancelled"] is True  # before it starts
    response = client.post("/api/bias", json={"suite": SUITE, "progress_id": "bias-cancelled"})
    assert response.status_code == 409 and response.json()["code"] == "cancelled"
    assert client.get("/api/runs", params={"kind": "bias"}).json()["total"] == 0
    host.store.close()
