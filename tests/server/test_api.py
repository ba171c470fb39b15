"""The JSON and binary API: same numbers as the library, clear 4xx errors, nothing crashes."""

from __future__ import annotations

import numpy as np
import pytest

from attnscope.analysis.stats import row_stats
from attnscope.capture import capture
from attnscope.render.json import analysis_json
from attnscope.server import binary
from tests.conftest import CHINESE, tiny


def test_analyze_returns_the_cli_shape_with_the_library_numbers(client):
    response = client.post("/api/analyze", json={"text": CHINESE, "layer": 1, "head": 3, "query": -3})
    assert response.status_code == 200
    body = response.json()
    expected = analysis_json(capture(tiny("qwen2"), CHINESE), layer=1, head=3, query=-3)
    assert body["tokens"] == expected["tokens"] and body["text"] == CHINESE
    np.testing.assert_allclose(body["attention"]["weights"], expected["attention"]["weights"], atol=1e-6)
    assert body["prediction"]["top"][0]["id"] == expected["prediction"]["top"][0]["id"]
    assert body["view"] == {"stacks": ["decoder"], "layers": 3, "heads": 4, "query_tokens": len(body["tokens"])}
    stats = row_stats(np.array(body["attention"]["weights"]))
    assert body["stats"]["raw"]["argmax"] == stats.argmax
    assert body["stats"]["raw"]["entropy_nats"] == pytest.approx(stats.entropy_nats, abs=1e-6)


def test_changing_layer_head_or_query_reuses_the_forward_pass(client, host):
    first = client.post("/api/analyze", json={"text": "same text"}).json()
    second = client.post("/api/analyze", json={"text": "same text", "layer": 0, "head": 1, "query": 2}).json()
    assert first["trace_id"] == second["trace_id"]
    trace = host.get_trace(first["trace_id"])
    np.testing.assert_allclose(second["attention"]["weights"], trace.attention(0, 1, rows=[2])[0], atol=1e-6)


def test_binary_row_grid_and_matrix_decode_to_the_trace(client, host):
    trace_id = client.post("/api/analyze", json={"text": "binary arrays"}).json()["trace_id"]
    trace = host.get_trace(trace_id)
    header, row = binary.decode(client.get(f"/api/traces/{trace_id}/row?layer=2&head=all&query=4").content)
    assert header["dtype"] == "float16" and row.shape == (4, len(trace.tokens))
    np.testing.assert_allclose(row, trace.attention(2, rows=[4])[:, 0], atol=1e-3)
    _, grid = binary.decode(client.get(f"/api/traces/{trace_id}/grid?query=-1").content)
    assert grid.shape == (3, 4, len(trace.tokens))
    np.testing.assert_allclose(grid[1], trace.attention(1, rows=[-1])[:, 0], atol=1e-3)
    response = client.get(f"/api/traces/{trace_id}/matrix?layer=0&head=mean")
    header, matrix = binary.decode(response.content)
    assert header["dtype"] == "uint8" and len(response.content) < 200 + matrix.size
    expected = trace.attention(0, "mean")
    np.testing.assert_allclose(matrix, expected, atol=expected.max() / 255)


@pytest.mark.parametrize(
    ("payload", "status", "message"),
    [
        ({"text": ""}, 422, "text: text is empty"),
        ({"text": "hi", "layer": 9}, 400, "layer 9 out of range"),
        ({"text": "hi", "head": 7}, 400, "head 7 out of range"),
        ({"text": "hi", "query": 50}, 400, "query 50 out of range"),
        ({"text": "x" * 300}, 400, "reads at most 256"),
        ({"text": "hi", "head": "median"}, 422, ""),
        ({"layer": 1}, 422, ""),
    ],
)
def test_bad_requests_get_clear_4xx(client, payload, status, message):
    response = client.post("/api/analyze", json=payload)
    assert response.status_code == status
    assert message in str(response.json()["detail"])
    assert client.post("/api/analyze", json={"text": "still works"}).status_code == 200


def test_oversized_and_malformed_bodies_are_refused(client):
    big = '{"text": "' + "a" * 8_100_000 + '"}'
    response = client.post("/api/analyze", content=big, headers={"content-type": "application/json"})
    assert response.status_code == 413 and response.json()["code"] == "too_large"
    long = '{"text": "' + "a" * 1_000_001 + '"}'
    response = client.post("/api/analyze", content=long, headers={"content-type": "application/json"})
    assert response.status_code == 422 and "the limit is 1,000,000" in response.json()["detail"]
    response = client.post("/api/analyze", content=b"\xff\xfe not json", headers={"content-type": "application/json"})
    assert response.status_code in (400, 422) and response.json()["detail"]
    response = client.get("/api/traces/nope/row")
    assert response.status_code == 404 and response.json()["code"] == "not_found"


def test_model_switch_and_a_failed_switch_keeps_the_old_model(client):
    assert client.get("/api/model").json()["model"]["spec"] == "tiny:qwen2"
    failed = client.post("/api/model", json={"spec": "no-such-model"})
    assert failed.status_code == 404 and "unknown model" in failed.json()["detail"]
    assert client.get("/api/model").json()["model"]["spec"] == "tiny:qwen2"
    switched = client.post("/api/model", json={"spec": "tiny:bert"})
    assert switched.status_code == 200 and switched.json()["model"]["kind"] == "masked"
    body = client.post("/api/analyze", json={"text": "an encoder"}).json()
    assert body["attention"]["stack"] == "encoder" and body["tokens"][0]["special"]


def test_no_stack_traces_reach_the_client(client, host, monkeypatch):
    def broken(*_args, **_kwargs):
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(host, "trace_for", broken)
    response = client.post("/api/analyze", json={"text": "boom"})
    assert response.status_code == 500
    assert "secret" not in response.text and "Traceback" not in response.text


def test_static_front_end_and_openapi_are_served(client):
    page = client.get("/")
    assert page.status_code == 200 and 'data-testid="prompt-input"' in page.text
    assert client.get("/static/app.js").status_code == 200
    assert "/api/analyze" in client.get("/openapi.json").json()["paths"]
    for path in ("/", "/static/app.js", "/static/api.js", "/static/draw.js", "/static/weights.js", "/static/style.css"):
        assert "http://" not in client.get(path).text and "https://" not in client.get(path).text
