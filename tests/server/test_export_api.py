"""``POST /api/export``: a held trace's views as PNG/SVG/PDF/CSV/JSON/HTML with the right media type and
file name, numbers equal to plain transformers' eager attention, answers drawn as given (personal data
masked by the server's policy), stored runs, and every bad request a 4xx with one line, never 500."""

from __future__ import annotations

import csv
import io
import json
import xml.etree.ElementTree as ElementTree

import numpy as np
import pytest

from tests.conftest import CHINESE, ENGLISH
from tests.render.test_exports_core import eager_tiny, heatmap_matrix, not_blank, png_pixels


@pytest.fixture
def stored(host, tmp_path):
    """The test host keeping runs in a store of its own."""
    from attnscope.store.runs import RunsStore

    host.store = RunsStore(tmp_path / "store")
    yield host
    host.store.close()
    host.store = None


def analyzed(client, text: str) -> dict:
    answer = client.post("/api/analyze", json={"text": text})
    assert answer.status_code == 200, answer.text
    return answer.json()


@pytest.mark.parametrize("text", [ENGLISH, CHINESE])
def test_a_held_trace_exports_every_format(client, text):
    trace_id = analyzed(client, text)["trace_id"]
    media = {
        "png": "image/png",
        "svg": "image/svg+xml",
        "pdf": "application/pdf",
        "csv": "text/csv; charset=utf-8",
        "json": "application/json",
        "html": "text/html; charset=utf-8",
    }
    for form, media_type in media.items():
        answer = client.post(
            "/api/export", json={"view": "heatmap", "format": form, "trace_id": trace_id, "layer": 1, "head": 0}
        )
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"] == media_type
        assert answer.headers["content-disposition"] == f'attachment; filename="attnscope-heatmap-{trace_id}.{form}"'
    png = client.post("/api/export", json={"view": "heatmap", "format": "png", "trace_id": trace_id}).content
    assert png_pixels(png).shape[1] >= 1600 and not_blank(png_pixels(png)) > 0.01
    body = client.post(
        "/api/export", json={"view": "heatmap", "format": "csv", "trace_id": trace_id, "layer": 1, "head": 0}
    )
    expected = eager_tiny("qwen2", text)[1, 0]
    np.testing.assert_allclose(heatmap_matrix(body.content, expected.shape[0]), expected, atol=1e-5)


def test_the_token_view_of_a_method_answer_shows_the_method(client):
    attribution = client.post("/api/attribute", json={"text": ENGLISH, "method": "grad-x-input"})
    assert attribution.status_code == 200, attribution.text
    answer = attribution.json()
    svg = client.post("/api/export", json={"view": "tokens", "format": "svg", "answer": answer, "text": ENGLISH})
    assert svg.status_code == 200, svg.text
    texts = " ".join(n.text or "" for n in ElementTree.fromstring(svg.content).iter() if n.tag.endswith("text"))
    assert "grad-x-input" in texts and "attention weight" not in texts
    table = client.post(
        "/api/export", json={"view": "tokens", "format": "json", "answer": answer, "text": ENGLISH}
    ).json()
    np.testing.assert_allclose([row[4] for row in table["rows"]], answer["scores"], atol=0)
    trace_id = analyzed(client, ENGLISH)["trace_id"]  # the same view of the trace with method=: the server runs it
    ran = client.post(
        "/api/export", json={"view": "tokens", "format": "json", "trace_id": trace_id, "method": "grad-x-input"}
    )
    assert ran.status_code == 200, ran.text
    np.testing.assert_allclose([row[4] for row in ran.json()["rows"]], answer["scores"], atol=1e-6)


def test_personal_data_is_masked_by_the_server_policy(client, host):
    text = "Call me on 13812345678 tomorrow"
    trace_id = analyzed(client, text)["trace_id"]
    body = client.post("/api/export", json={"view": "lines", "format": "csv", "trace_id": trace_id}).content.decode()
    assert "5678" not in body and "[PHONE]" in body
    host.pii_policy = "drop"
    refused = client.post("/api/export", json={"view": "lines", "format": "png", "trace_id": trace_id})
    assert refused.status_code == 400 and "drop" in refused.json()["detail"]
    host.pii_policy = "off"
    kept = client.post("/api/export", json={"view": "lines", "format": "csv", "trace_id": trace_id}).content.decode()
    assert "5678" in "".join(row[3] for row in csv.reader(io.StringIO(kept)) if row and not row[0].startswith("#"))


def test_a_stored_run_exports_its_answer_and_its_attention(stored, client):
    run_id = analyzed(client, ENGLISH)["run_id"]
    answer = client.post(
        "/api/export", json={"view": "heatmap", "format": "csv", "run_id": run_id, "layer": 2, "head": "max"}
    )
    assert answer.status_code == 200, answer.text
    expected = eager_tiny("qwen2", ENGLISH)[2].max(axis=0)
    np.testing.assert_allclose(heatmap_matrix(answer.content, expected.shape[0]), expected, atol=1e-5)
    attribution = client.post("/api/attribute", json={"text": ENGLISH, "method": "rollout"}).json()
    table = client.post("/api/export", json={"view": "tokens", "format": "json", "run_id": attribution["run_id"]})
    assert table.status_code == 200, table.text
    np.testing.assert_allclose([row[4] for row in table.json()["rows"]], attribution["scores"], atol=0)
    stored.load("tiny:llama")  # another model: the run's attention is not captured on it
    refused = client.post("/api/export", json={"view": "heatmap", "format": "png", "run_id": run_id})
    assert refused.status_code == 400 and "load that model first" in refused.json()["detail"]
    missing = client.post("/api/export", json={"view": "heatmap", "format": "png", "run_id": "0123456789abcdef"})
    assert missing.status_code == 404 and "no stored run" in missing.json()["detail"]


BAD = [
    ({"view": "heatmap", "format": "png"}, 422, "exactly one of"),
    ({"view": "heatmap", "format": "png", "trace_id": "abc", "run_id": "0123456789abcdef"}, 422, "exactly one of"),
    ({"view": "heatmap", "format": "gif", "trace_id": "abc"}, 422, "format"),
    ({"view": "nope", "format": "png", "trace_id": "abc"}, 400, "unknown view 'nope'"),
    ({"view": "heatmap", "format": "png", "trace_id": "0badc0de"}, 404, "unknown or expired trace"),
    ({"view": "heatmap", "format": "png", "run_id": "0123456789abcdef"}, 400, "keeps no runs"),
    ({"view": "heatmap", "format": "png", "trace_id": "abc", "extra": 1}, 422, "Extra inputs"),
    ({"view": "atlas", "format": "png", "answer": {"result": "head-atlas"}}, 422, "no usable 'projection'"),
    (
        {"view": "tokens", "format": "png", "answer": {"result": "attribution", "method": "rollout", "units": 3}},
        422,
        "units",
    ),
    (
        {"view": "metrics", "format": "csv", "answer": {"result": "heads", "metrics": {"x": [[1], [1, 2]]}}},
        422,
        "layers",
    ),
    (
        {"view": "timeline", "format": "png", "answer": {"result": "generation", "steps": "no"}},
        422,
        "well-formed timeline",
    ),
    ({"view": "heatmap", "format": "png", "answer": {"result": "analysis"}}, 422, "trace"),
    ({"view": "tokens", "format": "html", "answer": {"result": "attribution"}}, 422, "whole trace"),
]


@pytest.mark.parametrize(("body", "status", "words"), BAD)
def test_bad_requests_are_one_line_4xx(client, body, status, words):
    answer = client.post("/api/export", json=body)
    assert answer.status_code == status, answer.text
    detail = answer.json()["detail"]
    assert words in detail and "\n" not in detail


def test_out_of_range_options_are_400(client):
    trace_id = analyzed(client, ENGLISH)["trace_id"]
    for options, words in [
        ({"layer": 9}, "layer 9"),
        ({"head": 40}, "head 40"),
        ({"query": 500}, "out of range"),
        ({"view": "metrics", "metric": "nope"}, "unknown metric"),
        ({"view": "graph", "method_options": {"threshold": "abc"}}, "threshold must be a number"),  # was a 500
        ({"view": "sankey", "method_options": {"top": "abc"}}, "top must be a number"),
        ({"view": "sankey", "method_options": {"residual": "abc"}}, "residual must be a number"),
    ]:
        body = {"view": "heatmap", "format": "png", "trace_id": trace_id, **options}
        answer = client.post("/api/export", json=body)
        assert answer.status_code == 400 and words in answer.json()["detail"], answer.text
    assert json.loads(
        client.post("/api/export", json={"view": "grid", "format": "json", "trace_id": trace_id}).content
    )["rows"]
