"""One JSON contract per kind of result: the CLI's ``--json`` and the HTTP API answer the same object."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from attnscope.cli import main
from attnscope.server.app import create_app
from attnscope.server.host import ModelHost
from tests.server.conftest import loader

TEXT = "The capital of France is"
# clock readings differ between two runs, and so do provenance records' random ids
VOLATILE = {"captured_at", "computed_at", "loaded_at", "started_at", "finished_at", "seconds", "record_id"}
# how much a capture computed: the CLI computes what it shows, the server keeps whole traces for reuse
CAPTURE_SETTINGS = {"predict", "top_k", "layers_captured", "budget_bytes"}


def assert_same(cli, api, where: str = "") -> None:
    """Equal objects, but for clock readings and capture settings; numbers within 1e-5 (two forward passes)."""
    if isinstance(cli, dict) and isinstance(api, dict):
        keys = set(cli) - VOLATILE - CAPTURE_SETTINGS
        assert keys == set(api) - VOLATILE - CAPTURE_SETTINGS, (where, sorted(keys ^ set(api)))
        for key in keys:
            assert_same(cli[key], api[key], f"{where}.{key}")
    elif isinstance(cli, list) and isinstance(api, list):
        assert len(cli) == len(api), where
        for index, (a, b) in enumerate(zip(cli, api, strict=True)):
            assert_same(a, b, f"{where}[{index}]")
    elif isinstance(cli, float) or isinstance(api, float):
        assert cli == pytest.approx(api, abs=1e-5), where
    else:
        assert cli == api, where


@pytest.fixture(scope="module")
def client():
    host = ModelHost(loader=loader)
    host.load("tiny:llama")
    return TestClient(create_app(host), raise_server_exceptions=False)


def cli_json(capsys, *args: str) -> dict:
    assert main([*args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


CASES = [
    (
        "analysis",
        ["analyze", TEXT, "-m", "tiny:llama", "--layer", "1", "--head", "0,2", "--query", "-2", "-q"],
        ("post", "/api/analyze", {"text": TEXT, "layer": 1, "head": [0, 2], "query": -2}),
    ),
    (
        "attribution",
        ["attribute", TEXT, "--method", "occlusion", "-m", "tiny:llama", "--granularity", "word", "-q"],
        ("post", "/api/attribute", {"text": TEXT, "method": "occlusion", "granularity": "word"}),
    ),
    (
        "heads",
        ["heads", TEXT, "-m", "tiny:llama", "-q"],
        ("post", "/api/heads", {"text": TEXT}),
    ),
    (
        "parts",
        ["parts", TEXT, "--part", "subject=capital of France", "--part", "verb=is", "-m", "tiny:llama", "-q"],
        (
            "post",
            "/api/parts",
            {
                "text": TEXT,
                "parts": [{"name": "subject", "start": 4, "end": 21}, {"name": "verb", "start": 22, "end": 24}],
            },
        ),
    ),
    (
        "agreement",
        ["agreement", TEXT, "--methods", "attention", "grad-norm", "occlusion", "-m", "tiny:llama", "-q"],
        ("post", "/api/agreement", {"text": TEXT, "methods": ["attention", "grad-norm", "occlusion"]}),
    ),
    (
        "comparison",
        ["compare", "the cat sat", "the dog sat", "-m", "tiny:llama", "-q"],
        ("post", "/api/compare", {"texts": ["the cat sat", "the dog sat"]}),
    ),
    (
        "comparison",
        ["compare", "the cat sat", "the dog sat", "--layer", "0-1", "--head", "0,2", "-m", "tiny:llama", "-q"],
        ("post", "/api/compare", {"texts": ["the cat sat", "the dog sat"], "layer": "0-1", "head": [0, 2]}),
    ),
    (
        "analysis",
        ["analyze", TEXT, "-m", "tiny:llama", "--top-k", "37", "--layer", "all", "--head", "max", "-q"],
        ("post", "/api/analyze", {"text": TEXT, "top_k": 37, "layer": "all", "head": "max"}),
    ),
    (
        "generation",
        [
            "generate",
            "我爱中国，他的首都在于",
            "-m",
            "tiny:llama",
            "--max-new-tokens",
            "5",
            "--head",
            "1",
            "--top-k",
            "3",
            "-q",
        ],
        ("post", "/api/generate", {"text": "我爱中国，他的首都在于", "max_new_tokens": 5, "head": 1, "top_k": 3}),
    ),
    (
        "generation",
        [
            "generate",
            TEXT,
            "-m",
            "tiny:llama",
            "--sample",
            "--seed",
            "4",
            "--temperature",
            "0.8",
            "--layer",
            "0-1",
            "-q",
        ],
        ("post", "/api/generate", {"text": TEXT, "do_sample": True, "seed": 4, "temperature": 0.8, "layer": "0-1"}),
    ),
    (
        "generation",
        [
            "generate",
            TEXT,
            "-m",
            "tiny:llama",
            "--max-new-tokens",
            "3",
            "--attribute",
            "integrated-gradients",
            "--steps",
            "2",
            "--baseline",
            "zero",
            "-q",
        ],
        (
            "post",
            "/api/generate",
            {
                "text": TEXT,
                "max_new_tokens": 3,
                "attribute": "integrated-gradients",
                "options": {"steps": 2, "baseline": "zero"},
            },
        ),
    ),
    ("methods", ["methods"], ("get", "/api/methods", None)),
    ("models", ["models"], ("get", "/api/models", None)),
]


@pytest.mark.parametrize(("kind", "argv", "request_"), CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_cli_and_api_give_the_same_object(capsys, client, kind, argv, request_):
    from_cli = cli_json(capsys, *argv)
    method, path, body = request_
    response = client.post(path, json=body) if method == "post" else client.get(path)
    assert response.status_code == 200, response.text
    from_api = response.json()
    if kind in ("analysis", "generation"):
        assert len(from_api.pop("trace_id")) == 16  # the API's handle for row and tile requests
    assert from_cli["schema_version"] == 1 and from_cli["result"] == kind
    assert_same(from_cli, from_api)


def test_a_selection_is_labelled_exactly(client):
    body = client.post("/api/analyze", json={"text": TEXT, "layer": "1-2", "head": [0, 2], "query": 3}).json()
    attention = body["attention"]
    assert attention["layer"] == [1, 2] and attention["head"] == [0, 2] and attention["query"] == 3
    assert attention["label"] == "layers 1-2 (mean), mean of heads 0, 2, query 3 (decoder)"
    one = client.post("/api/analyze", json={"text": TEXT, "layer": -1, "head": "max"}).json()["attention"]
    assert one["layer"] == 2 and one["head"] == "max" and one["label"].startswith("layer 2, max of 4 heads")
