"""The corpus atlas API (server/routes/corpus.py): what the atlases hold, checked against the arrays
they were written from (numpy), atlases named only by name, an atlas rewritten while served read
afresh, and every bad request answered 404/409/422 with one line — never 500."""

from __future__ import annotations

import numpy as np
import pytest
from fastapi.testclient import TestClient

from attnscope.batch.atlas_index import AtlasFormatError
from attnscope.server.app import create_app
from tests.batch.atlas_files import write_atlas
from tests.conftest import CHINESE
from tests.test_cli import run


@pytest.fixture
def atlases(tmp_path):
    made = write_atlas(tmp_path / "corpus-one", prompts=10, seed=1)
    return tmp_path, made, write_atlas(tmp_path / "two", prompts=5, complete=False, seed=2)


@pytest.fixture
def corpus_client(host, atlases) -> TestClient:
    folder = atlases[0]
    return TestClient(create_app(host, atlases=[folder / "corpus-one", folder / "two"]), raise_server_exceptions=False)


def test_the_atlases_their_grid_heads_and_prompts(corpus_client, atlases):
    _, made, partial_made = atlases
    listed = corpus_client.get("/api/corpus").json()
    assert [a["name"] for a in listed["atlases"]] == ["corpus-one", "two"]
    assert [a["complete"] for a in listed["atlases"]] == [True, False]
    assert listed["atlases"][0]["corpus"]["path"] == "prompts.jsonl"  # the file's name, not the server's folders
    body = corpus_client.get("/api/corpus/corpus-one").json()
    values = made["values"].astype(np.float64)  # (prompts, layers, heads, metrics)
    for k, metric in enumerate(made["metrics"]):
        assert np.allclose(body["grid"][metric]["mean"], values[..., k].mean(axis=0), rtol=1e-9)
    head = corpus_client.get("/api/corpus/corpus-one/heads/1/2", params={"metric": "sink", "top": 3}).json()
    column = values[:, 1, 2, 3]
    assert head["metric"] == "sink" and head["distribution"]["count"] == 10 and len(head["unusual"]) == 3
    assert head["distribution"]["p75"] == pytest.approx(np.quantile(column, 0.75), rel=1e-9)
    median = np.median(column)
    z = (column - median) / (1.4826 * np.median(np.abs(column - median)))
    assert [p["prompt_index"] for p in head["unusual"]] == list(np.argsort(-np.abs(z), kind="stable")[:3])
    assert corpus_client.get("/api/corpus/corpus-one/heads/0/0").json()["metric"] == "entropy"  # the first metric
    prompt = corpus_client.get("/api/corpus/corpus-one/prompts/1").json()["prompt"]
    assert prompt["text"] == made["texts"][1] and prompt["text"].startswith(CHINESE)
    partial = corpus_client.get("/api/corpus/two/heads/0/1", params={"metric": "locality"}).json()
    assert partial["distribution"]["source"] == "shards"
    assert partial["distribution"]["mean"] == pytest.approx(
        partial_made["values"][:, 0, 1, 2].astype(np.float64).mean()
    )


def test_an_atlas_rewritten_while_served_is_read_afresh(corpus_client, atlases):
    folder = atlases[0]
    before = corpus_client.get("/api/corpus/two").json()
    rewritten = write_atlas(folder / "two", prompts=6, complete=True, seed=9)
    after = corpus_client.get("/api/corpus/two").json()
    assert after["atlas"]["version"] != before["atlas"]["version"] and after["atlas"]["complete"]
    assert np.allclose(after["grid"]["entropy"]["mean"], rewritten["values"][..., 0].astype(np.float64).mean(axis=0))
    head = corpus_client.get("/api/corpus/two/heads/0/0").json()
    assert head["atlas"]["version"] == after["atlas"]["version"] and head["distribution"]["count"] == 6


BAD = [
    ("/api/corpus/three", 404, "no atlas named 'three'; this server has corpus-one, two"),
    ("/api/corpus/..%2F..%2Fetc", 404, None),
    ("/api/corpus/.hidden", 422, "name"),
    ("/api/corpus/%E4%B8%AD", 422, "name"),
    ("/api/corpus/corpus-one/heads/2/0", 404, "layer 2, head 0 is not in atlas corpus-one (2 layers x 3 heads)"),
    ("/api/corpus/corpus-one/heads/0/3", 404, "layer 0, head 3 is not in atlas corpus-one"),
    ("/api/corpus/corpus-one/heads/-1/0", 422, "layer"),
    ("/api/corpus/corpus-one/heads/x/0", 422, "layer"),
    ("/api/corpus/corpus-one/heads/0/0?metric=induction", 422, "metric 'induction' is not in atlas corpus-one"),
    ("/api/corpus/corpus-one/heads/0/0?metric=../x", 422, "metric"),
    ("/api/corpus/corpus-one/heads/0/0?top=0", 422, "top"),
    ("/api/corpus/corpus-one/heads/0/0?top=1000", 422, "top"),
    ("/api/corpus/corpus-one/prompts/10", 404, "prompt 10 is not in atlas corpus-one (it holds prompts 0–3, 4–7, 8–9)"),
    ("/api/corpus/corpus-one/prompts/-1", 422, "index"),
    ("/api/corpus/corpus-one/prompts/99999999999999999999999", 422, "index"),
    ("/api/corpus/two/prompts/5", 404, "prompt 5 is not in atlas two"),
]


@pytest.mark.parametrize(("path", "status", "detail"), BAD, ids=[b[0] for b in BAD])
def test_bad_requests_are_answered_in_one_line(corpus_client, path, status, detail):
    answer = corpus_client.get(path)
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert set(body) == {"detail", "code"} and "\n" not in body["detail"]
    if detail:
        assert detail in body["detail"]


def test_an_atlas_corrupted_while_served_is_409_and_the_rest_still_answers(corpus_client, atlases):
    folder = atlases[0]
    shard = folder / "corpus-one" / "heads" / "shard-00002.parquet"
    shard.write_bytes(b"PAR1 not a parquet file")
    answer = corpus_client.get("/api/corpus/corpus-one/heads/0/0")
    assert answer.status_code == 409 and answer.json()["code"] == "bad_atlas"
    assert "heads/shard-00002.parquet does not match its checksum in atlas.json" in answer.json()["detail"]
    assert corpus_client.get("/api/corpus/two/heads/0/0").status_code == 200
    (folder / "two" / "atlas.json").write_text("[]", "utf-8")  # the index itself spoiled
    spoiled = corpus_client.get("/api/corpus/two")
    assert spoiled.status_code == 409 and "not an attnscope atlas index" in spoiled.json()["detail"]
    listed = corpus_client.get("/api/corpus")  # the list still names both: the spoiled one with why
    assert listed.status_code == 200, listed.text
    atlases = listed.json()["atlases"]
    assert [a["name"] for a in atlases] == ["corpus-one", "two"] and "error" not in atlases[0]
    assert "not an attnscope atlas index" in atlases[1]["error"]


def test_no_atlas_is_an_empty_list_and_a_bad_folder_stops_the_app(host, tmp_path):
    client = TestClient(create_app(host), raise_server_exceptions=False)
    assert client.get("/api/corpus").json()["atlases"] == []
    assert client.get("/api/corpus/x").status_code == 404
    with pytest.raises(AtlasFormatError, match=r"is not an atlas folder: it has no atlas\.json"):
        create_app(host, atlases=[tmp_path])


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p / "missing", "missing: no such folder"),
        (lambda p: p, "is not an atlas folder: it has no atlas.json"),
    ],
)
def test_serve_refuses_a_bad_atlas_before_loading_a_model(tmp_path, make, message):
    from tests.server.test_load import free_port

    done = run("serve", "--model", "tiny:llama", "--port", str(free_port()), "--atlas", str(make(tmp_path)))
    assert done.returncode == 2
    lines = done.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "loading" not in done.stderr.decode()
