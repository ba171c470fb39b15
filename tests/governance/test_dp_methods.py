"""Differential privacy on answers with several methods (attnscope.governance.dp_methods): an
agreement and a report release every method's scores once (ε each, composed), recompute the rank
agreement from what they release — checked here with scipy on the released scores — and withhold the
prediction and the head metrics; the CLI's report files and the API's report zip hold no exact score."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest
from scipy import stats

from attnscope.errors import InputError
from attnscope.governance.dp_methods import privatize_methods
from attnscope.methods.agreement import compare_methods
from attnscope.render.json import agreement_json
from tests.conftest import ENGLISH, tiny
from tests.governance.test_dp import cli
from tests.server import conftest as server_conftest

host, client = server_conftest.host, server_conftest.client  # the server tests' fixtures
METHODS = ["attention", "grad-x-input", "occlusion"]


@pytest.fixture(scope="module")
def agreement() -> dict:
    return agreement_json(compare_methods(tiny("llama"), ENGLISH, methods=METHODS, granularity="word"))  # has a BOS


def test_every_method_is_one_release_and_agreement_follows_from_them(agreement):
    before = json.dumps(agreement, sort_keys=True)
    private = privatize_methods("agreement", agreement, 2.0)
    assert json.dumps(agreement, sort_keys=True) == before  # the exact answer is not changed
    dp = private["dp"]
    assert dp["rows_released"] == 3 and dp["total_epsilon"] == 6.0 and dp["noise_scale"] == pytest.approx(1.0)
    assert private["provenance"]["dp_total_epsilon"] == 6.0 and private["provenance"]["dp_epsilon"] == 2.0
    assert sorted(dp["released"]) == sorted(f"methods.{m}.scores" for m in METHODS)
    assert "prediction" not in private or private.get("prediction") is None
    assert private["target"]["prob"] is None and "target.prob" in dp["withheld"]
    for name in METHODS:
        exact = np.asarray(agreement["methods"][name]["scores"], dtype=float)
        shown = np.asarray(private["methods"][name]["scores"], dtype=float)
        assert not np.allclose(shown, exact / np.abs(exact).sum(), atol=1e-6)  # noised
        assert private["methods"][name]["dp"]["epsilon"] == 2.0
    # agreement: scipy on the released scores, over the exact comparison's units (those in the text:
    # an inserted special token is not compared)
    names = private["agreement"]["methods"]
    assert names == METHODS and private["agreement"]["n_units"] == agreement["agreement"]["n_units"]
    inside = [u["start"] is not None for u in agreement["units"]]
    for i, a in enumerate(names):
        for j, b in enumerate(names):
            x = np.asarray(private["methods"][a]["scores"], dtype=float)[inside]
            y = np.asarray(private["methods"][b]["scores"], dtype=float)[inside]
            assert private["agreement"]["spearman"][i][j] == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-12)
            assert private["agreement"]["kendall"][i][j] == pytest.approx(stats.kendalltau(x, y).statistic, abs=1e-12)


def test_bad_budgets_other_answers_and_double_noise_are_refused(agreement):
    with pytest.raises(InputError, match="above 0"):
        privatize_methods("agreement", agreement, 0.0)
    with pytest.raises(InputError, match="agreement and report"):
        privatize_methods("analysis", agreement, 1.0)
    with pytest.raises(InputError, match="already noised"):
        privatize_methods("agreement", privatize_methods("agreement", agreement, 1.0), 1.0)


def test_a_cli_report_with_dp_holds_no_exact_score(tmp_path):
    common = ["--model", "tiny:gpt2", "--methods", "attention", "grad-x-input", "-q", "--json"]
    exact = cli("report", ENGLISH, "--out", str(tmp_path / "e.html"), *common, home=tmp_path)
    noised = cli("report", ENGLISH, "--out", str(tmp_path / "n.html"), *common, "--dp-epsilon", "1", home=tmp_path)
    assert exact.returncode == 0 and noised.returncode == 0, exact.stderr + noised.stderr
    data = json.loads((tmp_path / "n.json").read_text())
    assert data["dp"]["rows_released"] == 2 and data["dp"]["total_epsilon"] == 2.0
    assert data["heads"]["metrics"] == {} and data["prediction"] is None
    assert not any(line.startswith("Head types") or "predicts" in line for line in data["observations"])
    page = (tmp_path / "n.html").read_text()
    assert "data-testid='dp-label'" in page and "total ε = 2" in page
    numbers = [json.dumps(s) for m in json.loads(exact.stdout)["methods"].values() for s in m["scores"] if s]
    for path in (tmp_path / "n.html", tmp_path / "n.json"):
        content = path.read_text()
        assert not [n for n in numbers if n in content], path
    refused = cli("report", ENGLISH, "--out", str(tmp_path / "r.html"), *common, "--dp-epsilon", "0", home=tmp_path)
    assert refused.returncode == 2 and "above 0" in refused.stderr and not (tmp_path / "r.html").exists()


def test_the_api_noises_agreement_and_report(client):
    shown = client.post("/api/agreement", json={"text": ENGLISH, "methods": METHODS[:2], "dp_epsilon": 3})
    assert shown.status_code == 200, shown.text
    assert shown.json()["dp"]["rows_released"] == 2
    zipped = client.post("/api/report", json={"text": ENGLISH, "methods": METHODS[:2], "dp_epsilon": 3})
    assert zipped.status_code == 200, zipped.text
    with zipfile.ZipFile(io.BytesIO(zipped.content)) as archive:
        data = json.loads(archive.read("report.json"))
        page = archive.read("report.html").decode()
    assert data["dp"]["total_epsilon"] == 6.0 and data["heads"]["metrics"] == {} and "dp-label" in page
    refused = client.post("/api/report", json={"text": ENGLISH, "dp_epsilon": -1})
    assert refused.status_code == 422 and set(refused.json()) >= {"detail", "code"}
