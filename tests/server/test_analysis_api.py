"""The analysis routes answer with the library's numbers, and refuse bad requests cleanly."""

from __future__ import annotations

import numpy as np
import pytest

from attnscope.analysis.heads import head_metrics
from attnscope.analysis.parts import part_attention
from attnscope.capture import capture
from attnscope.capture.tokens import Part
from attnscope.methods.run import attribute
from tests.conftest import tiny

TEXT = "The capital of France is"


@pytest.mark.parametrize("method", ["attention", "rollout", "flow", "grad-x-input", "occlusion"])
def test_attribute_route_equals_the_library(client, method):
    response = client.post("/api/attribute", json={"text": TEXT, "method": method, "granularity": "word"})
    assert response.status_code == 200, response.text
    body = response.json()
    expected = attribute(tiny("qwen2"), TEXT, method, granularity="word")
    assert [u["text"] for u in body["units"]] == [u.text for u in expected.units]
    np.testing.assert_allclose(np.array(body["scores"], dtype=float), expected.scores, atol=1e-5)
    # every token carries its unit's score, for the token strip
    for unit, score in zip(expected.units, expected.scores, strict=True):
        for index in unit.tokens:
            assert body["token_scores"][index] == pytest.approx(score, abs=1e-5)


def test_heads_parts_and_agreement_routes(client):
    body = client.post("/api/heads", json={"text": TEXT}).json()
    expected = head_metrics(capture(tiny("qwen2"), TEXT))
    np.testing.assert_allclose(body["metrics"]["entropy"], expected["entropy"], atol=1e-5)
    assert ("induction" in body["metrics"]) != bool(body["note"])  # measured, or the reason why not
    assert len(body["labels"]) == expected["entropy"].shape[0]

    parts = [{"name": "subject", "start": 4, "end": 21}, {"name": "verb", "start": 22, "end": 24}]
    body = client.post("/api/parts", json={"text": TEXT, "parts": parts}).json()
    names, mass = part_attention(capture(tiny("qwen2"), TEXT), [Part(**p) for p in parts])
    assert body["parts"] == names == ["subject", "verb", "(other)"]
    np.testing.assert_allclose(body["mass"], mass, atol=1e-5)
    np.testing.assert_allclose(body["mean_over_heads"], mass.mean(axis=1), atol=1e-5)

    body = client.post("/api/agreement", json={"text": TEXT, "methods": ["attention", "occlusion", "grad-norm"]}).json()
    assert body["agreement"]["methods"] == ["attention", "occlusion", "grad-norm"]
    assert body["agreement"]["spearman"][0][0] == pytest.approx(1.0)


def test_analysis_routes_reject_bad_requests(client):
    assert client.post("/api/attribute", json={"text": TEXT, "method": "magic"}).status_code == 422
    response = client.post("/api/attribute", json={"text": TEXT, "method": "grad-norm", "query": 99})
    assert response.status_code == 400 and "out of range" in response.json()["detail"]
    response = client.post("/api/attribute", json={"text": "w " * 500, "method": "flow"})
    assert response.status_code == 400 and "reads at most 256" in response.json()["detail"]
    response = client.post("/api/parts", json={"text": TEXT, "parts": [{"name": "x", "start": 3, "end": 500}]})
    assert response.status_code == 400 and "outside the text" in response.json()["detail"]
    response = client.post(
        "/api/parts", json={"text": TEXT, "parts": [{"name": "x", "start": 0, "end": 3}], "query": "y"}
    )
    assert response.status_code == 400
    response = client.post("/api/heads", json={"text": ""})
    assert response.status_code == 422 and response.json() == {
        "detail": "text is empty",
        "code": "invalid_request",
    }
    assert client.get("/api/model").json()["status"] == "ready"  # nothing broke


def test_same_text_answers_without_tokens_and_long_grids_are_pooled(client, monkeypatch):
    from attnscope.server.binary import decode
    from attnscope.server.routes import arrays as app_module

    first = client.post("/api/analyze", json={"text": TEXT}).json()
    again = client.post("/api/analyze", json={"text": TEXT, "layer": 1, "include_tokens": False}).json()
    assert "tokens" not in again and again["trace_id"] == first["trace_id"]
    expected = capture(tiny("qwen2"), TEXT).attention(1, "mean", rows=[-1])[0]
    np.testing.assert_allclose(again["attention"]["weights"], expected, atol=1e-6)
    header, full = decode(client.get(f"/api/traces/{first['trace_id']}/grid").content)
    assert header["pooled"] == 1
    monkeypatch.setattr(app_module, "MAX_GRID_KEYS", 2)
    header, pooled = decode(client.get(f"/api/traces/{first['trace_id']}/grid").content)
    n = full.shape[-1]
    factor = -(-n // 2)
    assert header["pooled"] == factor and pooled.shape[-1] == -(-n // factor)
    np.testing.assert_allclose(pooled[..., 0], full[..., :factor].max(axis=-1))
    np.testing.assert_allclose(pooled[..., 1], full[..., factor:].max(axis=-1))
