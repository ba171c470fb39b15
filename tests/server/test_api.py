"""The JSON and binary API: same numbers as the library, clear 4xx errors, nothing crashes."""

from __future__ import annotations

import threading
import time

import httpx
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
        ({"text": ""}, 422, "text is empty"),
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


def test_no_stack_traces_reach_the_client(client, host, monkeypatch, caplog):
    def broken(*args, **_kwargs):
        raise RuntimeError(f"secret internal detail about {args!r}")  # the request's text among them

    monkeypatch.setattr(host, "trace_for", broken)
    response = client.post("/api/analyze", json={"text": "boom, call 13812345678"})
    assert response.status_code == 500
    assert "secret" not in response.text and "Traceback" not in response.text
    logged = "\n".join(record.getMessage() for record in caplog.records if record.name == "attnscope.server")
    assert "Traceback" in logged and "secret internal detail" in logged  # the log has the details …
    assert "13812345678" not in logged and "[PHONE]" in logged  # … with personal data masked
    # and the error goes no further: the server's own error handling (which would log the raw
    # traceback, as uvicorn does) never sees it — a client that raises what reaches it raises nothing
    from fastapi.testclient import TestClient

    strict = TestClient(client.app, raise_server_exceptions=True)
    assert strict.post("/api/analyze", json={"text": "boom, call 13812345678"}).status_code == 500
    assert not any("13812345678" in record.getMessage() or record.exc_info for record in caplog.records)


def test_static_front_end_and_openapi_are_served(client):
    page = client.get("/")
    assert page.status_code == 200 and 'data-testid="prompt-input"' in page.text
    assert client.get("/static/app.js").status_code == 200
    assert "/api/analyze" in client.get("/openapi.json").json()["paths"]
    for path in ("/", "/static/app.js", "/static/api.js", "/static/draw.js", "/static/weights.js", "/static/style.css"):
        assert "http://" not in client.get(path).text and "https://" not in client.get(path).text


def test_docs_work_offline(client):
    import re

    page = client.get("/docs")
    assert page.status_code == 200
    assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert len(assets) == 3 and all(a.startswith("/static-offline-docs/") for a in assets), assets  # no CDN
    assert "http://" not in page.text and "https://" not in page.text
    for asset in assets:
        assert client.get(asset).status_code == 200


def test_every_refusal_has_one_shape(client):
    cases = [
        client.get("/api/nowhere"),
        client.delete("/api/analyze"),
        client.post("/api/analyze", json={"text": "hi", "colour": "red"}),
        client.post("/api/analyze", json={"text": "hi", "layer": 1.5}),
        client.post(
            "/api/analyze", content=b'{"text": "hi", "top_k": NaN}', headers={"content-type": "application/json"}
        ),
        client.post("/api/analyze", content=b'{"text": "\\ud800 lone"}', headers={"content-type": "application/json"}),
        client.get("/api/traces/0123456789abcdef/tile?level=0&ty=0&tx=0"),
        client.post("/api/model", json={"spec": "   "}),
    ]
    for response in cases:
        body = response.json()
        assert 400 <= response.status_code < 500, (response.status_code, body)
        assert set(body) == {"detail", "code"} and isinstance(body["detail"], str) and "\n" not in body["detail"]
    assert [r.status_code for r in cases] == [404, 405, 422, 422, 422, 422, 404, 422]
    assert "lone surrogate" in cases[5].json()["detail"]
    assert client.get("/api/model").json()["status"] == "ready"  # a blank spec loads nothing


def test_a_model_folder_with_a_broken_config_leaves_the_server_ready(client, tmp_path):
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "llama", "num_hidden_layers": "many", "hidden_size": [1]}')
    (folder / "model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    response = client.post("/api/model", json={"spec": str(folder)})
    assert response.status_code == 400 and response.json()["code"] == "model_load_failed"
    info = client.get("/api/model").json()
    assert info["status"] == "ready" and info["model"]["spec"] == "tiny:qwen2"
    assert client.post("/api/analyze", json={"text": "still here"}).status_code == 200


def test_a_long_job_can_be_cancelled(host):
    from tests.server.test_load import running_server

    with running_server(host) as base:
        result: dict = {}

        def run() -> None:
            body = {"text": "one two three four five", "method": "integrated-gradients", "progress_id": "job-1"}
            body["options"] = {"steps": 4000}
            result["response"] = httpx.post(f"{base}/api/attribute", json=body, timeout=120)

        worker = threading.Thread(target=run)
        worker.start()
        deadline = time.monotonic() + 60
        while httpx.get(f"{base}/api/jobs/job-1").json()["done"] < 16:  # wait until it has really started
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert httpx.post(f"{base}/api/jobs/job-1/cancel", timeout=10).json()["cancelled"] is True
        worker.join(timeout=60)
        response = result["response"]
        assert response.status_code == 409
        assert response.json() == {"detail": "cancelled by the user", "code": "cancelled"}
        assert httpx.get(f"{base}/api/jobs/job-1").json()["done"] < 4000
        assert httpx.post(f"{base}/api/analyze", json={"text": "afterwards"}).status_code == 200
