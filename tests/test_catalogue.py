"""The method catalogue is the only list: a method registered here is usable from the CLI and the API at once."""

from __future__ import annotations

import json

import numpy as np
import pytest
from fastapi.testclient import TestClient

from attnscope.capture import capture
from attnscope.cli import main
from attnscope.errors import InputError
from attnscope.methods import MethodOutput, MethodSpec, Option, catalogue, register, unregister
from attnscope.methods.run import attribute
from attnscope.render.tables import methods_markdown
from attnscope.server.app import create_app
from attnscope.server.host import ModelHost
from tests.conftest import TOKEN_METHODS, tiny
from tests.server.conftest import loader

TEXT = "one two three four"


def _last_key(request):  # all importance on the key the query attends to least, scaled by `weight`
    row = request.trace().attention(-1, "mean", rows=[request.query])[0]
    scores = np.zeros(len(request.tokens))
    scores[int(np.argmin(row[: request.query + 1]))] = request.options["weight"]
    return MethodOutput(token_scores=scores, details={"argmin": int(np.argmin(row[: request.query + 1]))})


MINE = MethodSpec(
    "least-attended",
    "least attended key",
    "attention",
    "puts all importance on the key the query attends to least (a test method)",
    needs=("trace",),
    options=(Option("weight", "float", 1.0, "the score it gives", minimum=0.0, maximum=10.0),),
    run=_last_key,
)


@pytest.fixture
def registered():
    register(MINE)
    try:
        yield MINE
    finally:
        unregister(MINE.name)


def _expected(weight: float) -> np.ndarray:
    trace = capture(tiny("llama"), TEXT)
    row = trace.attention(-1, "mean", rows=[-1])[0]
    expected = np.zeros(len(trace.tokens))
    expected[int(np.argmin(row))] = weight
    return expected


def test_a_registered_method_is_usable_from_the_library_cli_and_api(registered, capsys):
    result = attribute(tiny("llama"), TEXT, "least-attended", weight=2.5)
    np.testing.assert_allclose(result.token_scores, _expected(2.5))

    assert main(["attribute", TEXT, "--method", "least-attended", "-m", "tiny:llama", "--weight", "2.5", "--json"]) == 0
    body = json.loads(capsys.readouterr().out)
    np.testing.assert_allclose(body["token_scores"], _expected(2.5))
    assert body["options"] == {"weight": 2.5} and body["result"] == "attribution"

    assert main(["attribute", TEXT, "--method", "least-attended", "-m", "tiny:llama", "--weight", "11"]) == 2
    assert "weight must be between 0 and 10" in capsys.readouterr().err

    host = ModelHost(loader=loader)
    host.load("tiny:llama")
    client = TestClient(create_app(host), raise_server_exceptions=False)
    listed = client.get("/api/methods").json()
    assert "least-attended" in [m["name"] for m in listed["methods"]]
    answer = client.post(
        "/api/attribute", json={"text": TEXT, "method": "least-attended", "options": {"weight": 2.5}}
    ).json()
    np.testing.assert_allclose(answer["token_scores"], _expected(2.5))
    refused = client.post("/api/attribute", json={"text": TEXT, "method": "least-attended", "options": {"size": 1}})
    assert refused.status_code == 422 and "'size' is not an option of least-attended" in refused.json()["detail"]


def test_cli_and_api_list_the_same_catalogue(capsys):
    assert main(["methods", "--json"]) == 0
    cli = json.loads(capsys.readouterr().out)
    host = ModelHost(loader=loader)
    host.load("tiny:llama")
    api = TestClient(create_app(host)).get("/api/methods").json()
    assert cli == api and cli["schema_version"] == 1 and cli["result"] == "methods"
    names = [m["name"] for m in cli["methods"]]
    assert tuple(names[:7]) == TOKEN_METHODS
    flow = next(m for m in cli["methods"] if m["name"] == "flow")
    assert flow["max_tokens"] == 256 and flow["needs"] == ["trace"] and flow["slow"] is True


def test_the_readme_method_table_is_the_catalogue():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    assert methods_markdown(catalogue.catalogue_json()) in readme


def test_options_are_checked_against_their_spec():
    spec = catalogue.get("integrated-gradients")
    assert spec.parse_options({}) == {"steps": "auto", "baseline": "mean"}
    assert spec.parse_options({"steps": "64"})["steps"] == 64
    for bad, message in (
        ({"steps": 0}, "between 1 and 4096"),
        ({"steps": 2.5}, "an integer"),
        ({"baseline": "median"}, "one of mean, pad, zero"),
        ({"mode": "remove"}, "'mode' is not an option of integrated-gradients"),
        ({"steps": float("nan")}, "an integer"),
    ):
        with pytest.raises(InputError, match=message):
            spec.parse_options(bad)
    with pytest.raises(ValueError, match="registered twice"):
        register(catalogue.get("rollout"))
