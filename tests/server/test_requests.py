"""Requests are read once and answered consistently: one model per request (a switch meanwhile never
mixes two), every JSON answer built by render/json.py, single-layer routes refuse ranges, top-k up to
100 from the cached trace, progress and cancellation from the first forward pass, one vocabulary."""

from __future__ import annotations

import uuid

import numpy as np
import pytest
from fastapi.testclient import TestClient

from attnscope.analysis.heads import head_metrics
from attnscope.analysis.units import GRANULARITIES
from attnscope.capture import capture
from attnscope.capture.reads import BACKENDS
from attnscope.capture.selection import STACKS
from attnscope.cli import build_parser
from attnscope.errors import CancelledError
from attnscope.methods import catalogue
from attnscope.methods.agreement import compare_methods
from attnscope.methods.heads import measure_heads
from attnscope.methods.run import attribute
from attnscope.methods.spec import OBJECTIVES
from attnscope.server.app import create_app
from attnscope.server.host import MAX_JOBS, ModelHost
from tests.conftest import tiny
from tests.server.conftest import loader

TEXT = "The capital of France is"


class SwitchesMidRequest(ModelHost):
    """Another tab's model switch lands right after a request has read the current model."""

    switch_to: str | None = None

    def current(self):  # type: ignore[no-untyped-def]
        model = super().current()
        spec, self.switch_to = self.switch_to, None
        if spec:
            self.load(spec)
        return model


@pytest.fixture
def switching() -> tuple[SwitchesMidRequest, TestClient]:
    host = SwitchesMidRequest(loader=loader)
    host.load("tiny:qwen2")
    return host, TestClient(create_app(host), raise_server_exceptions=False)


# --- one model per request --------------------------------------------------------------------------
def test_trace_for_uses_the_model_given_even_when_the_host_switches_during_the_forward_pass():
    host = ModelHost(loader=loader)
    first = host.load("tiny:qwen2")

    def make(model):
        host.load("tiny:llama")  # the switch lands while this request's forward pass runs
        return capture(model, TEXT)

    _, trace = host.trace_for(first, TEXT, "auto", make)
    second = host.current()
    assert second.spec == "tiny:llama" and trace.model.fingerprint == first.fingerprint
    _, again = host.trace_for(second, TEXT, "auto", lambda model: capture(model, TEXT))
    assert again.model.fingerprint == second.fingerprint  # never the other model's cached trace
    np.testing.assert_allclose(again.attention(-1, "mean"), capture(tiny("llama"), TEXT).attention(-1, "mean"))


@pytest.mark.parametrize("route", ["heads", "attribute", "analyze", "parts", "compare"])
def test_a_switch_during_a_request_answers_with_the_first_model_only(switching, route):
    host, client = switching
    qwen = tiny("qwen2")
    host.switch_to = "tiny:llama"
    body = {
        "heads": {"text": TEXT},
        "attribute": {"text": TEXT, "method": "attention", "granularity": "word"},
        "analyze": {"text": TEXT},
        "parts": {"text": TEXT, "parts": [{"name": "subject", "start": 4, "end": 21}]},
        "compare": {"texts": [TEXT, "The capital of Spain is"]},
    }[route]
    response = client.post(f"/api/{route}", json=body)
    assert host.current().spec == "tiny:llama"  # the switch did land during the request
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["model"]["fingerprint"] == qwen.fingerprint and answer["model"]["spec"] == "tiny:qwen2"
    trace = capture(qwen, TEXT)
    if route == "heads":
        expected = measure_heads(qwen, trace)
        np.testing.assert_allclose(answer["metrics"]["entropy"], head_metrics(trace)["entropy"], atol=1e-5)
        assert set(answer["metrics"]) == set(expected.metrics) and answer["note"] == expected.note
        for name, values in expected.metrics.items():
            np.testing.assert_allclose(np.array(answer["metrics"][name], dtype=float), values, atol=1e-5)
    elif route == "attribute":
        expected_scores = attribute(qwen, TEXT, "attention", granularity="word").scores
        np.testing.assert_allclose(np.array(answer["scores"], dtype=float), expected_scores, atol=1e-5)
    elif route == "analyze":
        np.testing.assert_allclose(answer["attention"]["weights"], trace.attention(-1, "mean", rows=[-1])[0], atol=1e-6)
    elif route == "parts":
        assert answer["provenance"]["weights_sha256"] == qwen.provenance["weights_sha256"]
    else:
        assert answer["prompts"][0]["n_tokens"] == len(trace.tokens)


# --- jobs ---------------------------------------------------------------------------------------------
def test_cancels_of_unknown_ids_are_bounded_and_a_running_job_still_gets_cancelled(client, host):
    with host.running("the-real-job") as job:  # a request in flight under this id
        assert job is not None
        for _ in range(1000):
            assert client.post(f"/api/jobs/{uuid.uuid4().hex}/cancel").status_code == 200
            assert len(host._jobs) <= MAX_JOBS
        answer = client.post("/api/jobs/the-real-job/cancel").json()
        assert answer["cancelled"] is True and job.cancelled
        with pytest.raises(CancelledError):
            job(1, 2)  # its next progress report stops it
    assert client.get("/api/jobs/the-real-job").json()["finished"] is True


def test_old_finished_jobs_go_before_pending_cancels(host):
    for index in range(MAX_JOBS):
        with host.running(f"done-{index}"):
            pass
    host.cancel("pending")
    for index in range(MAX_JOBS - 1):
        host.cancel(f"more-{index}")
    assert len(host._jobs) == MAX_JOBS and "pending" in host._jobs  # every finished one went first
    assert not any(name.startswith("done-") for name in host._jobs)
    host.cancel("one-more")
    assert "pending" not in host._jobs and "more-0" in host._jobs  # then the oldest pending one


# --- every JSON answer is a contract --------------------------------------------------------------
def test_model_pyramid_and_job_answers_carry_schema_version_and_result(client, host):
    for response in (client.get("/api/model"), client.post("/api/model", json={"spec": "tiny:qwen2"})):
        body = response.json()
        assert body["schema_version"] == 1 and body["result"] == "model_status"
        assert body["status"] == "ready" and body["message"] and body["model"]["fingerprint"]
    trace_id = client.post("/api/analyze", json={"text": TEXT}).json()["trace_id"]
    n = len(host.get_trace(trace_id).tokens)
    for head, canonical, heads in (("-1", 3, [3]), ("1,3", [1, 3], [1, 3]), ("mean", "mean", [0, 1, 2, 3])):
        body = client.get(f"/api/traces/{trace_id}/pyramid?layer=-1&head={head}").json()
        assert body["schema_version"] == 1 and body["result"] == "pyramid"
        assert body["head"] == canonical and body["heads"] == heads and body["layer"] == 2
        assert body["stack"] == "decoder" and body["shape"] == [n, n] and body["levels"] == 1
        assert body["tile"] == 256 and body["grids"] == [[1, 1]] and 0 < body["max"] <= 1
        assert body["model"]["fingerprint"] == host.current().fingerprint
    for response in (client.get("/api/jobs/some-job"), client.post("/api/jobs/some-job/cancel")):
        body = response.json()
        assert body["schema_version"] == 1 and body["result"] == "job" and body["id"] == "some-job"
        assert {"done", "total", "stage", "finished", "cancelled"} <= set(body)
    assert client.get("/api/jobs/some-job").json()["cancelled"] is True


# --- single-map routes take one layer ---------------------------------------------------------------
@pytest.mark.parametrize("layer", ["0-1", "00-3", " 0-2", "all", "1,2"])
@pytest.mark.parametrize("route", ["row", "matrix", "pyramid", "tile?level=0&ty=0&tx=0"])
def test_single_map_routes_refuse_several_layers(client, route, layer):
    trace_id = client.post("/api/analyze", json={"text": TEXT}).json()["trace_id"]
    joiner = "&" if "?" in route else "?"
    response = client.get(f"/api/traces/{trace_id}/{route}{joiner}layer={layer}")
    assert response.status_code == 422, (route, layer, response.text)
    assert response.json()["code"] == "invalid_request"
    assert response.json()["detail"].startswith("layer: one layer index is expected")


def test_single_map_routes_take_one_layer_as_text(client, host):
    trace_id = client.post("/api/analyze", json={"text": TEXT}).json()["trace_id"]
    for text, layer in (("-1", 2), (" 1 ", 1), ("0", 0), ("-3", 0)):
        assert client.get(f"/api/traces/{trace_id}/pyramid?layer={text}").json()["layer"] == layer
    for bad in ("top", "1.5", "", "nan"):
        response = client.get(f"/api/traces/{trace_id}/row?layer={bad}")
        assert response.status_code == 422 and response.json()["detail"].startswith("layer: a layer index")
    assert client.get(f"/api/traces/{trace_id}/row?layer=3").json()["code"] == "out_of_range"


# --- top-k up to the route's maximum ----------------------------------------------------------------
def test_analyze_honours_any_top_k_from_the_cached_trace(client):
    expected = capture(tiny("qwen2"), TEXT, top_k=37).top_predictions(-1, 37)
    first = client.post("/api/analyze", json={"text": TEXT, "top_k": 37}).json()
    assert [c["id"] for c in first["prediction"]["top"]] == [c.id for c in expected]
    np.testing.assert_allclose([c["prob"] for c in first["prediction"]["top"]], [c.prob for c in expected], atol=1e-6)
    again = client.post("/api/analyze", json={"text": TEXT, "top_k": 100}).json()
    assert again["trace_id"] == first["trace_id"] and len(again["prediction"]["top"]) == 100


# --- progress and cancellation from the forward pass on --------------------------------------------
@pytest.mark.parametrize("route", ["heads", "agreement"])
def test_heads_and_agreement_forward_passes_report_to_their_job(client, host, route):
    text = f"a text only the {route} route has seen"
    assert client.post(f"/api/jobs/{route}-job/cancel").json()["cancelled"] is True
    body = {"text": text, "progress_id": f"{route}-job"}
    response = client.post(f"/api/{route}", json=body)
    assert response.status_code == 409 and response.json()["code"] == "cancelled"
    state = client.get(f"/api/jobs/{route}-job").json()
    assert state["stage"] == "forward pass" and state["done"] == 1  # stopped at the first block
    assert (host.current().fingerprint, "auto", text) not in host._keys  # no trace was kept


def test_agreement_explains_the_prediction_after_the_query(client):
    methods = ["attention", "grad-norm"]
    answer = client.post("/api/agreement", json={"text": TEXT, "methods": methods, "query": 2}).json()
    expected = compare_methods(tiny("qwen2"), TEXT, methods=methods, query=2)
    for name in methods:
        assert answer["methods"][name]["query"] == 2
        scores = np.array(answer["methods"][name]["scores"], dtype=float)
        np.testing.assert_allclose(scores, expected.results[name].scores, atol=1e-5)


# --- one vocabulary ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("path", "body", "field", "choices"),
    [
        ("/api/analyze", {"text": TEXT, "backend": "fast"}, "backend", BACKENDS),
        ("/api/heads", {"text": TEXT, "stack": "middle"}, "stack", STACKS),
        ("/api/attribute", {"text": TEXT, "method": "attention", "granularity": "line"}, "granularity", GRANULARITIES),
        ("/api/attribute", {"text": TEXT, "method": "occlusion", "objective": "fun"}, "objective", OBJECTIVES),
    ],
)
def test_vocabularies_are_the_librarys(client, path, body, field, choices):
    response = client.post(path, json=body)
    assert response.status_code == 422
    assert response.json()["detail"] == f"{field}: must be one of {', '.join(choices)}"


def test_openapi_and_cli_list_the_librarys_vocabularies(client):
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    assert schemas["AnalyzeRequest"]["properties"]["backend"]["enum"] == list(BACKENDS)
    threshold = schemas["HeadsRequest"]["properties"]["threshold"]
    option = catalogue.get("head-metrics").option("threshold")
    assert (threshold["default"], threshold["minimum"], threshold["maximum"]) == (
        option.default,
        option.minimum,
        option.maximum,
    )
    assert client.post("/api/heads", json={"text": TEXT, "threshold": 1.5}).status_code == 422
    commands = build_parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]

    def choices(command: str, flag: str) -> object:
        return next(a.choices for a in commands[command]._actions if flag in a.option_strings)

    assert choices("analyze", "--stack") is STACKS and choices("heads", "--stack") is STACKS
    assert choices("analyze", "--backend") is BACKENDS and choices("attribute", "--objective") is OBJECTIVES
