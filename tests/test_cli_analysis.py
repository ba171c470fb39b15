"""The CLI contracts of ``attribute``, ``compare`` and ``report``, run as real subprocesses."""

from __future__ import annotations

import html
import json
import re

import numpy as np
import pytest

from attnscope.analysis.compare import trace_difference
from attnscope.capture import capture
from attnscope.methods.run import attribute
from tests.conftest import CHINESE, TOKEN_METHODS, tiny
from tests.test_cli import run


@pytest.mark.parametrize("method", ["attention", "flow", "integrated-gradients", "occlusion"])
def test_attribute_json_contract_and_library_numbers(method):
    completed = run("attribute", CHINESE, "--method", method, "-m", "tiny:llama", "--granularity", "word", "--json")
    assert completed.returncode == 0, completed.stderr.decode()
    body = json.loads(completed.stdout)
    assert {"method", "target", "granularity", "units", "scores"} <= set(body)
    assert set(body["target"]) == {"text", "ids"} and body["granularity"] == "word"
    expected = attribute(tiny("llama"), CHINESE, method, granularity="word")
    assert [u["text"] for u in body["units"]] == [u.text for u in expected.units]
    assert all(set(u) == {"text", "start", "end", "tokens"} for u in body["units"])
    got = np.array([np.nan if s is None else s for s in body["scores"]])
    np.testing.assert_allclose(got, expected.scores, atol=1e-5, equal_nan=True)
    if method == "integrated-gradients":
        assert "delta" in body["details"]


def test_attribute_table_and_errors():
    completed = run(
        "attribute",
        "one two three",
        "--method",
        "grad-x-input",
        "-m",
        "tiny:llama",
        "--target",
        " four",
        "--granularity",
        "word",
    )
    assert completed.returncode == 0
    out = completed.stdout.decode()
    assert "explains ' four' (continuation)" in out and "three" in out
    bad = run("attribute", "one two", "--method", "grad-norm", "-m", "tiny:bert")
    assert bad.returncode == 2 and b"causal" in bad.stderr
    bad = run("attribute", "one two", "--method", "attention", "-m", "tiny:llama", "--scorer-url", "http://x")
    assert bad.returncode == 2 and b"--scorer-url is for --method occlusion" in bad.stderr
    assert run("attribute", "one", "--method", "nope", "-m", "tiny:llama").returncode == 2


def test_compare_two_prompts():
    completed = run(
        "compare", "the cat sat", "the dog sat", "-m", "tiny:llama", "--layer", "1", "--head", "0", "--json"
    )
    assert completed.returncode == 0, completed.stderr.decode()
    body = json.loads(completed.stdout)
    assert [p["text"] for p in body["prompts"]] == ["the cat sat", "the dog sat"]
    model = tiny("llama")
    a, b = capture(model, "the cat sat"), capture(model, "the dog sat")
    expected = trace_difference(a, b, layer=1, head=0)
    np.testing.assert_allclose(body["difference"]["difference"], expected.difference, atol=1e-5)
    assert body["prompts"][0]["prediction"]["token"] == a.top_predictions(-1, 1)[0].token
    table = run("compare", "one", "two", "three", "-m", "tiny:llama").stdout.decode()
    assert table.count("prediction") == 3 and "difference" not in table


def test_report_writes_self_contained_html_and_json(tmp_path):
    out = tmp_path / "report.html"
    completed = run("report", "Paris is in France. The capital of France is", "-m", "tiny:llama", "--out", str(out))
    assert completed.returncode == 0, completed.stderr.decode()
    page = out.read_text(encoding="utf-8")
    data = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    assert set(data["methods"]) == set(TOKEN_METHODS)
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)  # nothing loaded from the network
    assert page.count("data:image/png;base64,") == len(data["heads"]["metrics"])
    for line in data["observations"]:
        assert html.escape(line) in page
    names = data["agreement"]["methods"]
    rho = data["agreement"]["spearman"][names.index("attention")][names.index("occlusion")]
    if rho is not None and rho < data["thresholds"]["attention_vs_occlusion"]:
        assert any("not a faithful explanation" in line for line in data["observations"])
    assert run("report", "x", "-m", "tiny:llama", "--out", str(tmp_path / "r.txt")).returncode == 2
    assert run("report", "x", "-m", "tiny:llama", "--out", str(tmp_path / "missing" / "r.html")).returncode == 2
