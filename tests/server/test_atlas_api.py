"""The model view, head atlas and query–key projection over HTTP: the pooled maps against eager
attention pooled by hand, the JSON against ``attnscope atlas --json``, and one-line 4xx refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest

from attnscope.server import binary
from tests.analysis.test_atlas import eager_maps, pool_by_hand
from tests.conftest import CHINESE, ENGLISH, tiny
from tests.server.conftest import assert_same
from tests.test_cli import run

TEXT = "The river city traded salt and grain with its neighbours, 我爱中国。"


def trace_id(client, text: str = TEXT) -> str:
    response = client.post("/api/analyze", json={"text": text})
    assert response.status_code == 200, response.text
    return response.json()["trace_id"]


@pytest.mark.parametrize("pool", ["max", "mean"])
def test_model_view_is_every_whole_map_pooled(client, pool):
    answer = client.post("/api/analyze", json={"text": TEXT}).json()
    n = len(answer["tokens"])
    response = client.get(f"/api/traces/{answer['trace_id']}/model-view", params={"size": 9, "pool": pool})
    assert response.status_code == 200, response.text
    header, values = binary.decode(response.content)
    factor = -(-n // 9)
    assert header["factor"] == factor and header["pool"] == pool and header["tokens"] == [n, n]
    assert header["layers"] == [0, 1, 2] and values.shape == (3, 4, -(-n // factor), -(-n // factor))
    maps = eager_maps(tiny("qwen2"), [t["id"] for t in answer["tokens"]])
    for layer, eager in enumerate(maps):
        for head in range(4):  # float16 on the wire: within 1e-3 of the pooled eager weights
            np.testing.assert_allclose(values[layer, head], pool_by_hand(eager[head], factor, pool), atol=1e-3)


@pytest.mark.parametrize("text", [ENGLISH, CHINESE])
def test_atlas_and_projection_answers_are_the_cli_json(client, text):
    atlas = client.post("/api/atlas", json={"text": text, "projection": "pca"})
    assert atlas.status_code == 200, atlas.text
    body = atlas.json()
    assert body["result"] == "head-atlas" and len(body["points"]) == 12 and body["text"] == text
    assert body["projection"]["method"] == "pca" and len(body["projection"]["explained_variance"]) == 2
    assert body["provenance"]["method"] == "head-atlas"
    cli = run("atlas", text, "--model", "tiny:qwen2", "--json", "--quiet")
    assert cli.returncode == 0, cli.stderr.decode()
    assert_same(json.loads(cli.stdout.decode("utf-8")), body)
    qk = client.post("/api/qk-projection", json={"text": text, "layer": 1, "head": 2})
    assert qk.status_code == 200, qk.text
    shown = qk.json()
    n = len(shown["tokens"])
    assert shown["result"] == "qk-projection" and shown["heads"] == [2] and len(shown["points"]) == 2 * n
    assert shown["kinds"] == ["q"] * n + ["k"] * n and shown["positions"] == list(range(n)) * 2
    assert shown["tokens"] == [t["text"] for t in client.post("/api/analyze", json={"text": text}).json()["tokens"]]
    cli = run("atlas", text, "--model", "tiny:qwen2", "--qk", "1:2", "--json", "--quiet")
    assert cli.returncode == 0, cli.stderr.decode()
    assert_same(json.loads(cli.stdout.decode("utf-8")), shown)


@pytest.mark.parametrize(
    ("path", "body", "status", "message"),
    [
        ("/api/atlas", {"projection": "lda"}, 422, "must be one of pca, tsne, umap"),
        ("/api/atlas", {"projection": "tsne", "perplexity": 50}, 400, "perplexity must be above 0 and below"),
        ("/api/atlas", {"projection": "umap", "n_neighbors": 12}, 400, "n_neighbors must be from 2 to 11"),
        ("/api/qk-projection", {"layer": 3}, 400, "layer 3 out of range"),
        ("/api/qk-projection", {"layer": 0, "head": 4}, 400, "head 4"),
        ("/api/qk-projection", {"layer": 0, "head": "some"}, 422, ""),
        ("/api/qk-projection", {"projection": "tsne", "max_points": 5000}, 400, "max_points must be from 2 to 3,000"),
    ],
)
def test_bad_requests_are_refused_with_one_line(client, path, body, status, message):
    response = client.post(path, json={"text": ENGLISH, **body})
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    assert "\n" not in str(detail) and message in str(detail)


def test_model_view_refusals(client):
    known = trace_id(client)
    for params, status in (
        ({"size": 0}, 422),
        ({"size": 65}, 422),
        ({"pool": "median"}, 422),
        ({"stack": "cross"}, 400),
    ):
        response = client.get(f"/api/traces/{known}/model-view", params=params)
        assert response.status_code == status, (params, response.text)
    missing = client.get("/api/traces/0123456789abcdef/model-view")
    assert missing.status_code == 404 and "unknown or expired trace" in missing.json()["detail"]


def test_encoder_decoder_projection_defaults_to_the_encoder(host, client):
    """On an encoder–decoder the page's default stack is cross-attention: with no stack the head atlas
    keeps it and the query–key projection (self-attention only) takes the encoder instead of refusing."""
    host.load("tiny:t5")
    text = "The cat sat on the mat."
    default = client.post("/api/qk-projection", json={"text": text, "layer": 0})
    encoder = client.post("/api/qk-projection", json={"text": text, "layer": 0, "stack": "encoder"})
    assert default.status_code == encoder.status_code == 200, default.text
    assert default.json()["stack"] == "encoder"
    np.testing.assert_allclose(default.json()["points"], encoder.json()["points"], atol=0)
    cross = client.post("/api/qk-projection", json={"text": text, "layer": 0, "stack": "cross"})
    assert cross.status_code == 400 and "self-attention" in cross.json()["detail"]
    atlas = client.post("/api/atlas", json={"text": text})
    assert atlas.status_code == 200 and atlas.json()["stack"] == "cross"
    few = client.post("/api/qk-projection", json={"text": text, "layer": 0, "max_points": 3}).json()
    assert len(few["points"]) == few["kept_points"] == 3 and few["subsampled"] and few["max_points"] == 3
