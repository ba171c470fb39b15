"""``GET /api/traces/{id}/graph`` and ``/sankey``: eager attention by hand, the CLI's ``--json`` (the same
object), and refusals (HTTP 4xx with one line; the CLI exits 2 with one line)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from attnscope.cli import main
from tests.analysis.test_graph_sankey import WEIGHT_TOLERANCE, eager_attention, hand_edges, hand_rollout, near
from tests.conftest import CHINESE, ENGLISH, tiny
from tests.test_cli import run
from tests.test_contracts import assert_same


def trace_id(client, text: str) -> str:
    response = client.post("/api/analyze", json={"text": text})
    assert response.status_code == 200, response.text
    return response.json()["trace_id"]


def test_graph_answer_is_eager_attention_over_the_threshold(client):
    ids, maps = eager_attention(tiny("qwen2"), CHINESE)
    answer = client.get(f"/api/traces/{trace_id(client, CHINESE)}/graph?layer=1&head=0,2&threshold=0.15").json()
    assert answer["result"] == "attention_graph" and answer["n_tokens"] == len(ids)
    assert answer["view"] == {"stack": "decoder", "layer": 1, "head": [0, 2], "label": "layer 1, mean of heads 0, 2"}
    weights = maps[1][[0, 2]].mean(axis=0)
    expected = hand_edges(weights, 0.15)
    got = {(e["query"], e["key"]): e["weight"] for e in answer["edges"]}
    unsure = near(weights, 0.15)
    assert set(got) - unsure == set(expected) - unsure
    assert all(abs(w - weights[pair]) < WEIGHT_TOLERANCE for pair, w in got.items())
    assert answer["shown"] == len(answer["edges"]) == answer["above_threshold"]  # under the default cap
    tokens = client.post("/api/analyze", json={"text": CHINESE}).json()["tokens"]
    assert answer["query_nodes"] == [tokens[i] for i in sorted({q for q, _ in got})]
    assert answer["key_nodes"] == [tokens[i] for i in sorted({k for _, k in got})]
    capped = client.get(f"/api/traces/{trace_id(client, CHINESE)}/graph?layer=1&head=0,2&threshold=0.15&max_edges=5")
    body = capped.json()
    assert body["shown"] == 5 and body["above_threshold"] == answer["above_threshold"]
    assert body["edges"] == answer["edges"][:5]


def test_sankey_answer_is_rollout_by_hand(client):
    _, maps = eager_attention(tiny("qwen2"), ENGLISH)
    mixed = hand_rollout(maps, "mean", 0.5)
    answer = client.get(f"/api/traces/{trace_id(client, ENGLISH)}/sankey?top=2&tokens=1").json()
    n = mixed[0].shape[0]
    share = np.zeros(n)
    share[-1] = 1.0
    for layer in reversed(range(len(mixed))):
        share = share @ mixed[layer]
    chosen = [t["index"] for t in answer["tokens"]]
    assert chosen == sorted({n - 1, 1, *np.argsort(-share, kind="stable")[:2].tolist()})
    np.testing.assert_allclose(answer["rollout"], share[chosen], atol=1e-5)
    np.testing.assert_allclose(answer["values"][0][:-1], share[chosen], atol=1e-5)
    links = np.array(answer["links"])
    np.testing.assert_allclose(links.sum(axis=1), np.array(answer["values"])[:-1], atol=1e-9)
    assert answer["other"] == n - len(chosen) and answer["layers"] == len(mixed)


def cli_json(capsys, *args: str) -> dict:
    assert main([*args, "-m", "tiny:qwen2", "-q", "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_cli_prints_the_api_answer(client, capsys):
    ident = trace_id(client, CHINESE)
    api = client.get(f"/api/traces/{ident}/graph?layer=-2&head=max&threshold=0.3&max_edges=7").json()
    cli = cli_json(capsys, "graph", CHINESE, "--layer", "-2", "--head", "max", "--threshold", "0.3", "--max-edges", "7")
    assert_same(cli, api)
    api = client.get(f"/api/traces/{ident}/sankey?top=3&tokens=2,-3&head=1&residual=0.4").json()
    cli = cli_json(capsys, "sankey", CHINESE, "--top", "3", "--tokens", "2,-3", "--head", "1", "--residual", "0.4")
    assert_same(cli, api)


@pytest.mark.parametrize(
    ("route", "status", "code"),
    [
        ("graph?threshold=1.5", 422, "invalid_request"),
        ("graph?threshold=-0.01", 422, "invalid_request"),
        ("graph?threshold=nan", 422, "invalid_request"),
        ("graph?threshold=inf", 422, "invalid_request"),
        ("graph?max_edges=0", 422, "invalid_request"),
        ("graph?layer=99", 400, "out_of_range"),
        ("graph?layer=0-2", 422, "invalid_request"),
        ("graph?head=all", 400, "bad_input"),
        ("graph?head=9", 400, "out_of_range"),
        ("sankey?tokens=99", 400, "out_of_range"),
        ("sankey?tokens=a,b", 422, "invalid_request"),
        ("sankey?top=21", 422, "invalid_request"),
        ("sankey?residual=nan", 422, "invalid_request"),
        ("sankey?query=-99", 400, "out_of_range"),
        ("sankey?stack=cross", 400, "out_of_range"),  # a decoder-only model has no cross stack
    ],
)
def test_bad_requests_are_refused_with_one_line(client, route, status, code):
    response = client.get(f"/api/traces/{trace_id(client, ENGLISH)}/{route}")
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == code and "\n" not in body["detail"] and body["detail"]


def test_unknown_trace_is_not_found(client):
    response = client.get("/api/traces/0123456789abcdef/graph")
    assert response.status_code == 404 and response.json()["code"] == "not_found"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["graph", "x y", "--threshold", "2"], "threshold must be a number between 0 and 1"),
        (["graph", "x y", "--threshold", "nan"], "threshold must be a number between 0 and 1"),
        (["graph", "x y", "--max-edges", "0"], "max_edges must be between 1 and"),
        (["graph", "x y", "--layer", "99"], "layer 99 out of range"),
        (["graph", "x y", "--layer", "0-2"], "--layer must be one layer"),
        (["sankey", "x y", "--tokens", "99"], "token 99 out of range"),
        (["sankey", "x y", "--tokens", "one"], "--tokens must be token positions"),
        (["sankey", "x y", "--residual", "nan"], "--residual must be between 0 and 1"),
        (["sankey", "x y", "--top", "99"], "--top must be between 0 and 20"),
    ],
)
def test_cli_refuses_bad_input_with_exit_2_and_one_line(args, message):
    completed = run(*args, "-m", "tiny:llama", "-q")
    assert completed.returncode == 2
    lines = completed.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines


def test_encoder_decoder_sankey_defaults_to_the_decoder(host, client):
    """The page's default stack on an encoder–decoder is cross-attention; the Sankey (self-attention
    only) then follows the decoder, whose last position is the prediction, instead of refusing."""
    host.load("tiny:t5")
    ident = trace_id(client, "The cat sat on the mat.")
    default = client.get(f"/api/traces/{ident}/sankey?top=2")
    decoder = client.get(f"/api/traces/{ident}/sankey?top=2&stack=decoder")
    assert default.status_code == decoder.status_code == 200, default.text
    assert default.json()["view"]["stack"] == "decoder"
    assert default.json()["values"] == decoder.json()["values"] and default.json()["links"] == decoder.json()["links"]
    cross = client.get(f"/api/traces/{ident}/sankey?stack=cross")
    assert cross.status_code == 400 and "self-attention" in cross.json()["detail"]
