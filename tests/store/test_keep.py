"""``attnscope.keep``: the library's way to store a result as a run (what ``--store`` does for the CLI).
The stored answers are compared with the JSON contracts made here from the same results."""

from __future__ import annotations

import pytest

import attnscope
from attnscope.errors import InputError
from attnscope.render.json import analysis_json, attribution_json, generation_json
from attnscope.store.runs import RunsStore
from tests.conftest import CHINESE, ENGLISH, tiny


def stored(folder, run_id: str) -> tuple[object, dict]:
    with RunsStore(folder) as store:
        run = store.get(run_id)
        return run, store.result(run)


def same_but_record(kept: dict, expected: dict) -> bool:
    volatile = ("provenance",)
    return {k: v for k, v in kept.items() if k not in volatile} == {
        k: v for k, v in expected.items() if k not in volatile
    }


def test_keep_stores_an_analysis_an_attribution_and_a_generation(tmp_path):
    model = tiny("gpt2")
    trace = attnscope.capture(model, CHINESE)
    run, answer = stored(tmp_path, attnscope.keep(trace, layer=1, head=2, folder=tmp_path))
    assert (run.kind, run.origin, run.text) == ("analysis", "library", CHINESE)
    assert same_but_record(answer, analysis_json(trace, layer=1, head=2))
    assert answer["provenance"]["run_id"] == run.id and answer["provenance"]["masking_policy"] == "mask"

    attribution = attnscope.attribute(model, ENGLISH, "grad-x-input")
    run, answer = stored(tmp_path, attnscope.keep(attribution, text=ENGLISH, folder=tmp_path))
    assert (run.kind, run.method) == ("attribution", "grad-x-input")
    assert same_but_record(answer, attribution_json(attribution))

    generation = attnscope.generate(model, ENGLISH, max_new_tokens=3)
    run, answer = stored(tmp_path, attnscope.keep(generation, folder=tmp_path))
    assert run.kind == "generation" and same_but_record(answer, generation_json(generation))


def test_keep_refuses_what_it_cannot_store(tmp_path):
    model = tiny("gpt2")
    with pytest.raises(InputError, match="pass text="):
        attnscope.keep(attnscope.attribute(model, ENGLISH, "attention"), folder=tmp_path)
    with pytest.raises(InputError, match="not the text"):
        attnscope.keep(attnscope.attribute(model, ENGLISH, "attention"), text=CHINESE, folder=tmp_path)
    with pytest.raises(InputError, match="not dict"):
        attnscope.keep({"result": "analysis"}, folder=tmp_path)
    phone = attnscope.capture(model, "我的电话是13812345678")
    assert attnscope.keep(phone, pii_policy="drop", folder=tmp_path) is None
    with RunsStore(tmp_path) as store:
        assert store.list()[1] == 0


def test_store_keyword_of_capture_generate_and_attribute(tmp_path, monkeypatch):
    """``store=`` on the public entry points: a folder, or True for the data folder's store; the
    result's record names its run, and the run holds the same answer ``keep`` would make."""
    import attnscope.capture.engine  # the subpackage imported first: the entry point stays

    model = tiny("gpt2")
    trace = attnscope.capture(model, ENGLISH, store=tmp_path)
    generation = attnscope.generate(model, CHINESE, max_new_tokens=3, store=tmp_path)
    scores = attnscope.attribute(model, ENGLISH, "grad-x-input", store=tmp_path)
    expected = {
        trace.provenance["run_id"]: analysis_json(trace),
        generation.provenance["run_id"]: generation_json(generation),
        scores.provenance["run_id"]: attribution_json(scores),
    }
    for run_id, answer in expected.items():
        run, kept = stored(tmp_path, run_id)
        assert same_but_record(kept, answer) and run.origin == "library"
    assert attnscope.capture(model, ENGLISH).provenance["run_id"] is None  # store off by default: nothing kept
    with RunsStore(tmp_path) as store:
        assert store.list()[1] == 3
    home = tmp_path / "home"
    monkeypatch.setenv("ATTNSCOPE_HOME", str(home))
    again = attnscope.capture(model, ENGLISH, store=True)
    assert stored(home / "store", again.provenance["run_id"])[0].kind == "analysis"
    with pytest.raises(InputError, match="store="):
        attnscope.capture(model, ENGLISH, store=3)
    assert attnscope.capture.Trace is type(trace) and callable(attnscope.capture)
