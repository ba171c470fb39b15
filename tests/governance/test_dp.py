"""Differential privacy on answers (attnscope.governance.dp): the noise checked against its stated
distribution with scipy, the records, the refusals, and the CLI and API storing only noised values.

Statistical checks (each states its tolerance): for n releases of a fixed row with Laplace scale b,
each entry's noise has mean 0 (standard error √2·b/√n) and variance 2b² (standard error of the sample
variance √((μ₄ − σ⁴)/n) = √(20/n)·b² for the Laplace distribution); both are held to 5 standard errors,
and the pooled noise must pass a Kolmogorov–Smirnov test against scipy's Laplace(0, b) at p > 0.001
(so a correct implementation fails it once in a thousand runs).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sqlite3
import subprocess
import sys

import numpy as np
import pytest
from fastapi.testclient import TestClient
from scipy import stats

from attnscope.analysis.stats import row_stats, without_special
from attnscope.capture import capture
from attnscope.errors import InputError
from attnscope.governance.dp import privatize_answer
from attnscope.methods.run import attribute
from attnscope.render.json import analysis_json, attribution_json
from attnscope.render.tables import attribution_text
from attnscope.render.text import analysis_text
from attnscope.server.app import create_app
from attnscope.server.host import ModelHost
from attnscope.store.runs import RunsStore
from tests.conftest import ENGLISH, tiny
from tests.server import conftest as server_conftest
from tests.server.conftest import loader

host, client = server_conftest.host, server_conftest.client  # the server tests' fixtures

RELEASES = 2000
SIGMAS = 5  # tolerance of the mean and variance checks, in standard errors


@pytest.fixture(scope="module")
def analysis() -> dict:
    trace = capture(tiny("gpt2"), ENGLISH, top_k=10)
    return analysis_json(trace)


@pytest.fixture(scope="module")
def attribution() -> dict:
    return attribution_json(attribute(tiny("gpt2"), ENGLISH, "grad-x-input", granularity="word"))


def _noise(answer: dict, epsilon: float, **options) -> np.ndarray:
    """(RELEASES, keys) noise of RELEASES releases of the answer's attention row."""
    row = np.asarray(answer["attention"]["weights"])
    released = [privatize_answer("analysis", answer, epsilon, **options) for _ in range(RELEASES)]
    return np.asarray([one["attention"]["weights"] for one in released]) - row


@pytest.mark.parametrize("epsilon", [1.0, 4.0])
def test_laplace_noise_has_the_stated_distribution(analysis, epsilon):
    scale = 2 / epsilon  # L1 sensitivity 2 of a probability row
    noise = _noise(analysis, epsilon)
    mean_error = math.sqrt(2) * scale / math.sqrt(RELEASES)
    variance_error = math.sqrt(20 / RELEASES) * scale**2
    for entry in noise.T:
        assert abs(entry.mean()) < SIGMAS * mean_error
        assert abs(entry.var() - 2 * scale**2) < SIGMAS * variance_error
    assert stats.kstest(noise.ravel(), stats.laplace(scale=scale).cdf).pvalue > 0.001
    # the entries are drawn independently: no correlation between neighbouring entries' noise
    correlation = np.corrcoef(noise[:, 0], noise[:, 1])[0, 1]
    assert abs(correlation) < SIGMAS / math.sqrt(RELEASES)


def test_gaussian_noise_and_its_calibration_are_what_the_record_says(analysis):
    epsilon, delta = 2.0, 1e-6
    dp = privatize_answer("analysis", analysis, epsilon, mechanism="gaussian", delta=delta)["dp"]
    sigma, sensitivity = dp["noise_scale"], dp["sensitivity"]
    assert sensitivity == pytest.approx(math.sqrt(2)) and dp["sensitivity_norm"] == "L2"
    # independent check of OpenDP's calibration: the exact privacy curve of the Gaussian mechanism
    # (Balle & Wang 2018) at this σ gives a δ(ε) no larger than the δ claimed
    a, b = sensitivity / (2 * sigma), epsilon * sigma / sensitivity
    exact_delta = stats.norm.cdf(a - b) - math.exp(epsilon) * stats.norm.cdf(-a - b)
    assert exact_delta <= delta
    assert exact_delta > delta / 100  # and the noise is not far larger than needed
    noise = _noise(analysis, epsilon, mechanism="gaussian", delta=delta)
    assert stats.kstest(noise.ravel(), stats.norm(scale=sigma).cdf).pvalue > 0.001


def test_the_record_and_the_dp_block_say_what_was_done(analysis):
    epsilon = 0.5
    private = privatize_answer("analysis", analysis, epsilon)
    dp = private["dp"]
    assert dp["noise_scale"] == pytest.approx(2 / epsilon, rel=1e-12)
    assert dp["noise_scale"] >= 2 / epsilon  # rounded up, never down
    assert dp["mechanism"] == "laplace" and dp["delta"] is None
    assert (dp["sensitivity"], dp["sensitivity_norm"]) == (2.0, "L1")
    assert dp["rows_released"] == 1 and dp["total_epsilon"] == epsilon
    assert dp["library"].startswith("opendp ") and dp["released"] == ["attention.weights"]
    assert "post_processing" in dp and "prediction" in dp["withheld"] and private["prediction"] is None
    record = private["provenance"]
    expected = {
        "dp_mechanism": "laplace",
        "dp_epsilon": epsilon,
        "dp_delta": None,
        "dp_sensitivity": 2.0,
        "dp_sensitivity_norm": "L1",
        "dp_noise_scale": dp["noise_scale"],
        "dp_rows_released": 1,
        "dp_total_epsilon": epsilon,
        "dp_library": dp["library"],
    }
    assert {key: record[key] for key in expected} == expected
    weights = private["attention"]["weights"]
    hashes = record.get("output_hashes") or {}
    if "attention.weights" in hashes:  # the record's hash is the released row's, never the exact row's
        canonical = json.dumps(weights, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        assert hashes["attention.weights"] == hashlib.sha256(canonical.encode()).hexdigest()
    # the statistics are the library's own, of the released row
    specials = [t["special"] for t in private["tokens"]]
    assert private["stats"]["raw"] == pytest.approx(row_stats(weights).to_dict())
    assert private["stats"]["without_special"] == pytest.approx(row_stats(without_special(weights, specials)).to_dict())
    text = analysis_text(private)
    assert "noised  differential privacy: ε = 0.5, Laplace (L1 sensitivity 2, scale 4)" in text
    assert "prediction: withheld" in text


def test_attribution_releases_normalised_scores_once(attribution):
    epsilon = 3.0
    scores = np.asarray(attribution["scores"], dtype=float)
    private = privatize_answer("attribution", attribution, epsilon)
    dp = private["dp"]
    assert dp["rows_released"] == 1 and dp["total_epsilon"] == dp["rows_released"] * epsilon
    assert dp["sensitivity"] == 2.0 and dp["noise_scale"] == pytest.approx(2 / epsilon)
    assert private["provenance"]["dp_total_epsilon"] == epsilon
    # token scores are each token's unit score, taken from the released scores
    for unit, score in zip(private["units"], private["scores"], strict=True):
        assert all(private["token_scores"][index] == score for index in unit["tokens"])
    # details computed from the model's outputs are withheld; the baseline setting is kept
    assert not {"f", "delta", "f_input"} & set(private["details"])
    target = private["provenance"]["target"]  # the exact target probability is an output too: withheld
    assert all(value is None for key, value in target.items() if key not in ("text", "ids", "objective", "query"))
    assert attribution["provenance"]["target"].get("prob") is not None or "prob" not in target
    assert "noised  differential privacy: ε = 3" in attribution_text(private)
    # the released scores are centred on the scores divided by their L1 norm
    released = np.asarray([privatize_answer("attribution", attribution, epsilon)["scores"] for _ in range(500)])
    error = math.sqrt(2) * dp["noise_scale"] / math.sqrt(500)
    assert np.abs(released.mean(axis=0) - scores / np.abs(scores).sum()).max() < SIGMAS * error
    gaussian = privatize_answer("attribution", attribution, epsilon, mechanism="gaussian", delta=1e-5)["dp"]
    assert gaussian["sensitivity"] == 2.0  # a signed vector of L1 norm 1 can turn into its negation: L2 distance 2


def test_the_answer_given_is_never_changed(analysis, attribution):
    for kind, answer in (("analysis", analysis), ("attribution", attribution)):
        before = json.dumps(answer, sort_keys=True)
        privatize_answer(kind, answer, 1.0)
        assert json.dumps(answer, sort_keys=True) == before


@pytest.mark.parametrize(
    ("epsilon", "options"),
    [
        (0, {}),
        (-1.0, {}),
        (math.nan, {}),
        (math.inf, {}),
        (100.5, {}),
        (1.0, {"mechanism": "gaussian"}),
        (1.0, {"mechanism": "gaussian", "delta": 0.0}),
        (1.0, {"mechanism": "gaussian", "delta": 1.0}),
        (1.0, {"mechanism": "gaussian", "delta": 0.999999}),  # no guarantee: refused above 1e-2
        (1e-300, {}),  # nothing but noise: refused below 1e-3
        (1.0, {"delta": 1e-6}),
        (1.0, {"mechanism": "exponential"}),
        (1.0, {"seed": 3}),
    ],
)
def test_meaningless_budgets_are_refused(analysis, epsilon, options):
    with pytest.raises(InputError) as error:
        privatize_answer("analysis", analysis, epsilon, **options)
    assert "\n" not in str(error.value)


def test_only_analyses_and_attributions_once(analysis):
    with pytest.raises(InputError, match="analysis and attribution"):
        privatize_answer("generation", analysis, 1.0)
    with pytest.raises(InputError, match="already noised"):
        privatize_answer("analysis", privatize_answer("analysis", analysis, 1.0), 1.0)


# ---- the CLI, as a real process -------------------------------------------------------------------
def cli(*args: str, home) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "attnscope", *args],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env={**os.environ, "ATTNSCOPE_HOME": str(home), "PYTHONIOENCODING": "utf-8"},
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--dp-epsilon", "0"], "above 0"),
        (["--dp-epsilon", "nan"], "finite"),
        (["--dp-epsilon", "101"], "no meaningful privacy"),
        (["--dp-epsilon", "1", "--dp-mechanism", "gaussian", "--dp-delta", "2"], "between 0 and 1"),
        (["--dp-delta", "1e-6"], "need --dp-epsilon"),
        (["--dp-epsilon", "1", "--save", "t.safetensors"], "exact trace"),
    ],
)
def test_the_cli_refuses_bad_budgets_in_one_line(tmp_path, args, message):
    result = cli("analyze", ENGLISH, "--model", "tiny:gpt2", *args, home=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1 and message in result.stderr


def test_the_cli_prints_and_stores_only_noised_values(tmp_path):
    plain = cli("analyze", ENGLISH, "--model", "tiny:gpt2", "--json", "-q", home=tmp_path)
    noised = cli(
        "analyze", ENGLISH, "--model", "tiny:gpt2", "--json", "-q", "--store", "--dp-epsilon", "1", home=tmp_path
    )
    assert plain.returncode == 0 and noised.returncode == 0, plain.stderr + noised.stderr
    exact, shown = json.loads(plain.stdout), json.loads(noised.stdout)
    assert len(exact["attention"]["weights"]) == len(shown["attention"]["weights"])
    assert not np.allclose(exact["attention"]["weights"], shown["attention"]["weights"], atol=1e-6)
    assert shown["dp"]["epsilon"] == 1.0 and shown["provenance"]["dp_mechanism"] == "laplace"
    stored = json.loads(cli("runs", "show", shown["run_id"], home=tmp_path).stdout)["answer"]
    assert stored["attention"]["weights"] == shown["attention"]["weights"] and stored["dp"] == shown["dp"]
    assert stored["prediction"] is None
    # no file of the store holds the exact row, nor a candidate's exact probability
    exact_numbers = [json.dumps(w) for w in exact["attention"]["weights"]]
    exact_numbers += [json.dumps(c["prob"]) for c in exact["prediction"]["top"]]
    files = [path for path in (tmp_path / "store").rglob("*") if path.is_file()]
    assert any(path.name == "runs.sqlite3" for path in files)
    for path in files:
        content = path.read_bytes().decode("utf-8", errors="replace")
        assert not [number for number in exact_numbers if number in content], path
    with sqlite3.connect(tmp_path / "store" / "runs.sqlite3") as db:
        assert db.execute("SELECT count(*) FROM runs").fetchone() == (1,)


def test_the_cli_attribute_text_says_the_scores_are_noised(tmp_path):
    result = cli(
        "attribute", ENGLISH, "--method", "attention", "--model", "tiny:gpt2", "-q", "--dp-epsilon", "2", home=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert "noised  differential privacy: ε = 2, Laplace (L1 sensitivity 2, scale 1)" in result.stdout


# ---- the API -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "dp",
    [
        {"dp_epsilon": 0},
        {"dp_epsilon": -2.0},
        {"dp_epsilon": 100.5},
        {"dp_epsilon": "1"},
        {"dp_epsilon": 1.0, "dp_mechanism": "gaussian"},
        {"dp_epsilon": 1.0, "dp_mechanism": "gaussian", "dp_delta": 1.5},
        {"dp_epsilon": 1.0, "dp_delta": 1e-6},
        {"dp_delta": 1e-6, "dp_mechanism": "gaussian"},
        {"dp_epsilon": 1.0, "dp_mechanism": "randomised"},
    ],
)
def test_the_api_refuses_bad_budgets(client, dp):
    for route, body in (("/api/analyze", {}), ("/api/attribute", {"method": "attention"})):
        response = client.post(route, json={"text": ENGLISH, **body, **dp})
        assert response.status_code == 422, response.text
        assert set(response.json()) >= {"detail", "code"}


def test_the_api_noises_before_it_returns_or_stores(tmp_path):
    served = ModelHost(loader=loader)
    served.load("tiny:qwen2")
    api = TestClient(create_app(served), raise_server_exceptions=False)
    exact = api.post("/api/analyze", json={"text": ENGLISH}).json()
    assert "dp" not in exact and exact["prediction"] is not None
    assert exact["provenance"].get("dp_epsilon") is None  # DP off: the answer as it always was
    served.store = RunsStore(tmp_path)
    shown = api.post("/api/analyze", json={"text": ENGLISH, "dp_epsilon": 2.0}).json()
    assert shown["dp"]["noise_scale"] == pytest.approx(1.0) and shown["provenance"]["dp_epsilon"] == 2.0
    assert "trace_id" not in shown and "trace_id" in exact  # no handle to the trace's exact arrays
    assert not np.allclose(shown["attention"]["weights"], exact["attention"]["weights"], atol=1e-6)
    kept = served.store.result(served.store.get(shown["run_id"]))
    assert kept["attention"]["weights"] == shown["attention"]["weights"] and kept["prediction"] is None
    # a layer change without tokens: the answer still says it is noised, and has its statistics
    partial = api.post(
        "/api/analyze", json={"text": ENGLISH, "layer": 0, "include_tokens": False, "dp_epsilon": 2.0}
    ).json()
    assert "tokens" not in partial and partial["dp"]["epsilon"] == 2.0 and partial["stats"]["raw"]
    scores = api.post("/api/attribute", json={"text": ENGLISH, "method": "attention"}).json()
    private = api.post(
        "/api/attribute",
        json={"text": ENGLISH, "method": "attention", "dp_epsilon": 5, "dp_mechanism": "gaussian", "dp_delta": 1e-6},
    ).json()
    assert private["dp"]["mechanism"] == "gaussian" and private["provenance"]["dp_delta"] == 1e-6
    assert private["scores"] != scores["scores"]
    kept = served.store.result(served.store.get(private["run_id"]))
    assert kept["scores"] == private["scores"] and kept["dp"] == private["dp"]
    served.store.close()
