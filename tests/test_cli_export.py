"""``attnscope export``: every format of a trace file's view, written atomically; a stored run's own view
from its answer and its attention captured again on its own model; numbers equal to plain
transformers' eager attention; one-line refusals (exit 2) that leave no file behind."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import CHINESE, ENGLISH
from tests.render.test_exports_core import eager_tiny, heatmap_matrix, not_blank, png_pixels, trace_of
from tests.test_cli import run


@pytest.fixture(scope="module")
def trace_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("trace") / "english.safetensors"
    trace_of("llama", ENGLISH).save(path)
    return path


def test_every_format_of_a_trace_file_is_written(trace_file, tmp_path):
    for form in ("png", "svg", "pdf", "csv", "json", "html"):
        out = tmp_path / f"heat.{form}"
        done = run("export", str(trace_file), "--format", form, "--layer", "1", "--head", "2", "--out", str(out))
        assert done.returncode == 0, done.stderr.decode()
        assert done.stdout.decode().startswith(f"wrote {out}")
        assert out.stat().st_size > 1000
    assert png_pixels((tmp_path / "heat.png").read_bytes()).shape[1] >= 1600
    assert (tmp_path / "heat.svg").read_text(encoding="utf-8").lstrip().startswith("<?xml")
    assert (tmp_path / "heat.pdf").read_bytes().startswith(b"%PDF")
    assert b"<html" in (tmp_path / "heat.html").read_bytes()[:2000].lower()
    shown = heatmap_matrix((tmp_path / "heat.csv").read_bytes(), len(trace_of("llama", ENGLISH).tokens))
    np.testing.assert_allclose(shown, eager_tiny("llama", ENGLISH)[1, 2], atol=1e-5)
    body = json.loads((tmp_path / "heat.json").read_text(encoding="utf-8"))
    assert body["view"] == "heatmap" and body["model"]["spec"] == "tiny:llama"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        f"heat.{f}" for f in ("png", "svg", "pdf", "csv", "json", "html")
    )


def test_the_default_file_name_is_view_and_source(trace_file, tmp_path):
    command = [sys.executable, "-m", "attnscope", "export", str(trace_file), "--view", "grid", "--format", "svg", "-q"]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr.decode()
    assert [p.name for p in tmp_path.iterdir()] == ["attnscope-grid-english.svg"]


def _stored(*args: str) -> dict:
    done = run(*args, "-m", "tiny:llama", "--store", "--pii-policy", "off", "--json", "-q")
    assert done.returncode == 0, done.stderr.decode()
    return json.loads(done.stdout)


@pytest.mark.parametrize("text", [ENGLISH, CHINESE])
def test_a_stored_analysis_is_captured_again_on_its_own_model(text, tmp_path):
    body = _stored("analyze", text)
    out = tmp_path / "run.csv"
    done = run("export", body["run_id"], "--format", "csv", "--layer", "2", "--head", "mean", "--out", str(out))
    assert done.returncode == 0, done.stderr.decode()
    shown = heatmap_matrix(out.read_bytes(), len(body["tokens"]))
    np.testing.assert_allclose(shown, eager_tiny("llama", text)[2].mean(axis=0), atol=1e-5)
    png = tmp_path / "run.png"
    assert run("export", body["run_id"], "--view", "lines", "--query", "3", "--out", str(png)).returncode == 0
    assert not_blank(png_pixels(png.read_bytes())) > 0.01


def test_a_stored_attribution_exports_its_own_answer(tmp_path):
    body = _stored("attribute", ENGLISH, "--method", "grad-x-input")
    out = tmp_path / "scores.csv"
    done = run("export", body["run_id"], "--format", "csv", "--out", str(out))  # the token view of its answer
    assert done.returncode == 0, done.stderr.decode()
    kept = [line for line in out.read_text().splitlines() if not line.startswith("#")]
    rows = list(csv.reader(io.StringIO("\n".join(kept))))
    assert rows[0] == ["unit", "text", "start", "end", "score"]
    np.testing.assert_allclose([float(r[4]) for r in rows[1:]], body["scores"], atol=1e-12)
    svg = tmp_path / "scores.svg"
    assert run("export", body["run_id"], "--format", "svg", "--out", str(svg)).returncode == 0
    assert "grad-x-input" in svg.read_text(encoding="utf-8")


def test_a_saved_json_answer_is_drawn_as_it_is(tmp_path):
    """An answer saved from a command's --json (here attribute's) exports like a stored run's, with
    no store involved; a saved answer no view draws, NaN, a JSON list and non-UTF-8 are refused."""
    done = run("attribute", ENGLISH, "--method", "grad-x-input", "-m", "tiny:llama", "--json", "-q")
    assert done.returncode == 0, done.stderr.decode()
    answer = tmp_path / "attribution.json"
    answer.write_bytes(done.stdout)
    scores = json.loads(done.stdout)["scores"]
    out = tmp_path / "scores.csv"
    assert run("export", str(answer), "--format", "csv", "--out", str(out)).returncode == 0
    kept = [line for line in out.read_text().splitlines() if not line.startswith("#")]
    np.testing.assert_allclose([float(r[4]) for r in list(csv.reader(io.StringIO("\n".join(kept))))[1:]], scores)
    bad = {
        "nan.json": (b'{"result": "attribution", "scores": [NaN]}', "NaN, which is not JSON"),
        "list.json": (b"[1, 2]", "a JSON list, not an answer"),
        "latin.json": (b'{"text": "\xe9"}', "is not UTF-8"),
        "broken.json": (b'{"result": ', "is not JSON"),
        "other.json": (b'{"result": "nothing-we-know"}', "views that draw it: none"),
    }
    folder = tmp_path / "out"
    folder.mkdir()
    for name, (data, message) in bad.items():
        (tmp_path / name).write_bytes(data)
        done = run("export", str(tmp_path / name), "--view", "tokens", "-q", "--out", str(folder / "x.png"))
        error = done.stderr.decode()
        assert done.returncode == 2 and message in error and len(error.strip().splitlines()) == 1, (name, error)
    assert list(folder.iterdir()) == []


def _put_run(model: dict, text: str = ENGLISH) -> str:
    from attnscope.store.runs import RunsStore

    answer = {"schema_version": 1, "result": "analysis", "model": model, "text": text, "tokens": []}
    with RunsStore() as store:
        return store.put(kind="analysis", text=text, model=model, result=answer, origin="cli", pii_policy="off").id


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--view", "nope"], "unknown view 'nope'"),
        (["--format", "gif"], "invalid choice: 'gif'"),
        (["--layer", "7"], "layer 7 out of range"),
        (["--head", "9"], "head 9"),
        (["--head", "most"], "--head must be a head index, mean or max"),
        (["--query", "500"], "out of range"),
        (["--view", "atlas"], "drawn from a head-atlas"),
        (["--view", "tokens", "--method", "nope"], "unknown method 'nope'"),
        (["--option", "threshold"], "--option takes NAME=VALUE"),
        (["--view", "graph", "--option", "threshold=abc"], "threshold must be a number"),  # was a traceback
    ],
)
def test_bad_options_are_refused_and_write_nothing(trace_file, tmp_path, args, message):
    out = tmp_path / "out.png"
    done = run("export", str(trace_file), *args, "--out", str(out))
    assert done.returncode == 2 and message in done.stderr.decode(), done.stderr.decode()
    assert len(done.stderr.decode().strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_bad_sources_are_refused_and_write_nothing(tmp_path):
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all}")
    missing = _put_run({"spec": "no-such-model", "name": "gone", "fingerprint": "0123456789abcdef0123"})
    other = _put_run({"spec": "tiny:llama", "name": "tiny random llama", "fingerprint": "ffffffffffffffffffff"})
    cases = [
        (str(corrupt), "trace"),
        ("0123456789abcdef", "no stored run 0123456789abcdef"),
        ("not-a-thing", "no trace file 'not-a-thing'"),
        (missing, "its model no-such-model is not available here"),
        (other, "never another model's numbers"),
    ]
    folder = tmp_path / "out"
    folder.mkdir()
    for source, message in cases:
        done = run("export", source, "--view", "heatmap", "-q", "--out", str(folder / "x.png"))
        error = done.stderr.decode()
        assert done.returncode == 2 and message in error and len(error.strip().splitlines()) == 1, (source, error)
    assert list(folder.iterdir()) == []


def test_bad_destinations_are_refused(trace_file, tmp_path):
    for out, message in [
        (tmp_path / "x.pdf", "--out must end in .png"),
        (tmp_path / "no" / "x.png", "does not exist"),
    ]:
        done = run("export", str(trace_file), "--out", str(out))
        assert done.returncode == 2 and message in done.stderr.decode(), done.stderr.decode()
    (tmp_path / "d.png").mkdir()
    done = run("export", str(trace_file), "--out", str(tmp_path / "d.png"))
    assert done.returncode == 2 and "is a folder" in done.stderr.decode()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.png"]


def test_export_leaves_the_import_light():
    done = subprocess.run(
        [sys.executable, "-m", "attnscope", "export", "--help"],
        capture_output=True,
        check=False,
        env={**os.environ, "PYTHONIOENCODING": "utf-8"},
        timeout=120,
    )
    assert done.returncode == 0 and b"TRACE_OR_RUN" in done.stdout
    probe = "import sys, attnscope.cli.export; print(sorted({'torch','matplotlib','pyarrow'} & set(sys.modules)))"
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True, check=True).stdout.strip() == b"[]"
