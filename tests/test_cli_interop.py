"""``attnscope interop``: export a trace file or a stored run to bertviz, CircuitsVis and inseq, import
inseq's files as runs; bad inputs are refused in one line with exit status 2 and change nothing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from attnscope.capture.trace import Trace
from attnscope.store.runs import RunsStore
from tests.conftest import CHINESE, ENGLISH
from tests.render.test_interop import bertviz_params, circuitsvis_props
from tests.test_cli import run

inseq = pytest.importorskip("inseq")


@pytest.fixture(scope="module")
def trace_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("interop") / "trace.safetensors"
    saved = run("analyze", CHINESE, "--model", "tiny:gpt2", "--save", str(path), "--quiet")
    assert saved.returncode == 0, saved.stderr.decode()
    return path


def ok(*args: str) -> str:
    result = run(*args)
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout.decode("utf-8")


def refused(*args: str) -> str:
    result = run(*args)
    error = result.stderr.decode("utf-8").strip()
    assert result.returncode == 2 and error.startswith("error: ") and "\n" not in error, error
    return error


def test_exports_of_a_trace_file_hold_its_attention(trace_file, tmp_path):
    trace = Trace.load(trace_file)
    every = np.stack([trace.attention(layer, None) for layer in range(trace.num_layers())])  # (layers, heads, q, k)
    ok("interop", "export", str(trace_file), "--to", "bertviz", "--out", str(tmp_path / "head.html"), "-q")
    params = bertviz_params((tmp_path / "head.html").read_text(encoding="utf-8"))
    np.testing.assert_allclose(np.array(params["attention"][0]["attn"]), every, atol=1e-6, rtol=0)
    ok("interop", "export", str(trace_file), "--to", "bertviz", "--view", "model", "--layers", "1,2", "--heads", "0",
       "--out", str(tmp_path / "model.html"), "-q")  # fmt: skip
    params = bertviz_params((tmp_path / "model.html").read_text(encoding="utf-8"))
    np.testing.assert_allclose(np.array(params["attention"][0]["attn"]), every[1:3, [0]], atol=1e-6, rtol=0)
    assert params["include_layers"] == [1, 2]
    ok("interop", "export", str(trace_file), "--to", "circuitsvis", "--layer", "0", "--out", str(tmp_path / "cv.html"))
    props = circuitsvis_props((tmp_path / "cv.html").read_text(encoding="utf-8"), "AttentionHeads")
    np.testing.assert_allclose(np.array(props["attention"]), every[0], atol=1e-6, rtol=0)
    assert props["tokens"][0] == "我"
    printed = ok("interop", "export", str(trace_file), "--to", "bertviz", "--out", str(tmp_path / "bv.safetensors"))
    assert printed.strip() == str(tmp_path / "bv.safetensors")
    from attnscope.render.interop import load_tensors

    loaded = load_tensors(tmp_path / "bv.safetensors")
    np.testing.assert_allclose(np.stack([t[0].numpy() for t in loaded["attention"]]), every, atol=0, rtol=0)


def test_inseq_export_and_import_through_the_runs_store(trace_file, tmp_path):
    out = tmp_path / "attention.json"
    ok("interop", "export", str(trace_file), "--to", "inseq", "--method", "attention", "--out", str(out), "-q")
    sequence = inseq.FeatureAttributionOutput.load(out)[0]
    trace = Trace.load(trace_file)
    # the attention method's defaults: the last query's row, mean over heads, then over every layer
    row = np.mean([trace.attention(layer, "mean", rows=[-1])[0] for layer in range(trace.num_layers())], axis=0)
    np.testing.assert_allclose(sequence.target_attributions.numpy()[:-1, 0], row, atol=1e-6, rtol=0)
    ids = ok("interop", "import", str(out), "--from", "inseq").split()
    assert len(ids) == 1
    with RunsStore() as store:
        stored = store.get(ids[0])
        answer = store.result(stored)
    assert (stored.kind, stored.origin, stored.text, stored.method) == (
        "attribution", "import", CHINESE, "inseq:attnscope:attention",
    )  # fmt: skip
    np.testing.assert_allclose(np.array(answer["scores"]), row, atol=1e-6, rtol=0)
    again = tmp_path / "again.json"  # a stored attribution run exports too
    ok("interop", "export", ids[0], "--to", "inseq", "--out", str(again))
    np.testing.assert_allclose(
        inseq.FeatureAttributionOutput.load(again)[0].target_attributions.numpy()[:-1, 0], row, atol=1e-6, rtol=0
    )


def test_a_phone_number_never_reaches_the_exported_file(tmp_path):
    path = tmp_path / "phone.safetensors"
    ok("analyze", "Call me at 415-555-0132 tomorrow", "--model", "tiny:gpt2", "--save", str(path), "--quiet")
    for target, name, extra in (("bertviz", "p.html", []), ("circuitsvis", "c.html", []),
                                ("inseq", "p.json", ["--method", "attention"])):  # fmt: skip
        ok("interop", "export", str(path), "--to", target, "--out", str(tmp_path / name), "-q", *extra)
        written = (tmp_path / name).read_text(encoding="utf-8")
        assert "555-0132" not in written and "PHONE" in written, target
    labels = bertviz_params((tmp_path / "p.html").read_text(encoding="utf-8"))["attention"][0]["left_text"]
    assert not any(digit in "".join(labels) for digit in "0123456789")  # every piece of the number masked
    tokens = circuitsvis_props((tmp_path / "c.html").read_text(encoding="utf-8"), "AttentionHeads")["tokens"]
    assert not any(digit in "".join(tokens) for digit in "0123456789")
    loaded = inseq.FeatureAttributionOutput.load(tmp_path / "p.json")
    assert not any(digit in "".join(t.token for t in loaded[0].target) for digit in "0123456789")
    assert "555" not in loaded.info["input_texts"][0] and -1 in [t.id for t in loaded[0].target]


def test_bad_inputs_are_refused_and_change_nothing(trace_file, tmp_path):
    with RunsStore() as store:
        before = store.list()[1]
    (tmp_path / "other.json").write_text(json.dumps({"sequence_attributions": 3}))
    (tmp_path / "cut.json").write_text('{"__instance_type__": ["inseq.data.attribution", ')
    assert "no sequence_attributions" in refused("interop", "import", str(tmp_path / "other.json"), "--from", "inseq")
    assert "not JSON" in refused("interop", "import", str(tmp_path / "cut.json"), "--from", "inseq")
    assert "no file" in refused("interop", "import", str(tmp_path / "none.json"), "--from", "inseq")
    assert "invalid choice: 'bertviz'" in refused("interop", "import", str(trace_file), "--from", "bertviz")
    with RunsStore() as store:
        assert store.list()[1] == before
    missing = tmp_path / "no" / "x.html"
    assert "does not exist" in refused("interop", "export", str(trace_file), "--to", "bertviz", "--out", str(missing))
    out = tmp_path / "x.json"
    assert "needs --method" in refused("interop", "export", str(trace_file), "--to", "inseq", "--out", str(out))
    assert "neither a trace file nor a stored run" in refused(
        "interop", "export", "nothing-here", "--to", "bertviz", "--out", str(out)
    )
    assert "no stored run" in refused("interop", "export", "0123456789abcdef", "--to", "inseq", "--out", str(out))
    answer = tmp_path / "answer.json"  # a saved --json answer is not a trace: told what to give instead
    answer.write_text(json.dumps({"result": "generation"}))
    assert "is a JSON file; interop export reads a trace file" in refused(
        "interop", "export", str(answer), "--to", "inseq", "--out", str(out)
    )
    assert "layer 9" in refused("interop", "export", str(trace_file), "--to", "circuitsvis", "--layer", "9",
                                "--out", str(out))  # fmt: skip
    assert "--layers: write indexes" in refused(
        "interop", "export", str(trace_file), "--to", "bertviz", "--layers", "a,b", "--out", str(out)
    )
    assert not out.exists() and not missing.parent.exists()
    kept = ok("analyze", ENGLISH, "--model", "tiny:gpt2", "--store", "--json", "--quiet")
    run_id = json.loads(kept)["run_id"]
    assert "not the attention matrices" in refused("interop", "export", run_id, "--to", "bertviz", "--out", str(out))
    assert "analysis run" in refused("interop", "export", run_id, "--to", "inseq", "--out", str(out))
    assert not out.exists()
