"""The loss objective and the row without its first key through the HTTP API: /api/attribute and
/api/report against gradients written with plain torch, /api/analyze's statistics against a
renormalisation by hand."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest

from attnscope.analysis.stats import row_stats
from tests.conftest import tiny
from tests.test_objective_and_first_token import TEXT, loss_grad_x_input, renormalised_by_hand


def test_the_api_attributes_and_reports_the_loss(client):
    model = tiny("qwen2")  # the served model (tests/server/conftest.py)
    expected = loss_grad_x_input(model, TEXT)
    answer = client.post(
        "/api/attribute", json={"text": TEXT, "method": "grad-x-input", "objective": "loss", "granularity": "token"}
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["objective"] == "loss"
    np.testing.assert_allclose(answer.json()["token_scores"], expected, rtol=1e-4, atol=1e-6)

    refused = client.post("/api/attribute", json={"text": TEXT, "method": "occlusion", "objective": "loss"})
    assert refused.status_code == 400 and "loss objective" in refused.json()["detail"]

    body = {"text": TEXT, "methods": ["attention", "grad-x-input", "occlusion"], "objective": "loss"}
    report = client.post("/api/report", json={**body, "granularity": "token"})
    assert report.status_code == 200, report.text
    with zipfile.ZipFile(io.BytesIO(report.content)) as archive:
        data = json.loads(archive.read("report.json"))
        page = archive.read("report.html").decode()
    assert data["target"]["objective"] == "loss"
    np.testing.assert_allclose(data["methods"]["grad-x-input"]["scores"], expected, rtol=1e-4, atol=1e-6)
    assert "occlusion" in data["skipped"] and "occlusion" not in data["methods"]
    said = [line for line in data["observations"] if "explain the loss" in line]
    assert len(said) == 1 and said[0] in page
    assert client.post("/api/report", json={**body, "objective": "perplexity"}).status_code == 422


def test_the_analysis_answer_has_the_stats_without_the_first_key(client):
    answer = client.post("/api/analyze", json={"text": TEXT, "layer": 1, "head": 0})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    row = body["attention"]["weights"]
    special = {i for i, token in enumerate(body["tokens"]) if token["special"]}
    for basis, dropped in (("without_first", {0}), ("without_first_and_special", {0} | special)):
        by_hand = renormalised_by_hand(row, dropped)
        stats = body["stats"][basis]
        assert stats["sum"] == pytest.approx(1.0, abs=1e-9)
        assert stats["max"] == pytest.approx(max(by_hand), abs=1e-9) and stats["argmax"] == int(np.argmax(by_hand))
        assert stats == pytest.approx(row_stats(by_hand).to_dict(), abs=1e-9)
