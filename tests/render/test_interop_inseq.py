"""inseq both ways, with the real inseq: attnscope's exports load with ``FeatureAttributionOutput.load``
and hold our scores; attributions inseq computes itself on a tiny model import with equal numbers;
bad files are refused with one line and store nothing."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import numpy as np
import pytest

import attnscope
from attnscope.capture import capture
from attnscope.errors import InputError
from attnscope.methods.run import attribute
from attnscope.methods.steps import step_attribution
from attnscope.models.tiny import build_tiny
from attnscope.render.inseq_export import to_inseq
from attnscope.render.inseq_file import place_tokens
from attnscope.render.inseq_io import from_inseq, import_inseq
from attnscope.render.json import attribution_json
from attnscope.store.runs import RunsStore
from tests.conftest import CHINESE, ENGLISH, tiny

inseq = pytest.importorskip("inseq")


@pytest.fixture(scope="module")
def inseq_files(tmp_path_factory) -> dict[str, Path]:
    """An attribution computed by inseq itself (input × gradient on the tiny GPT-2, saved from a local
    folder), saved as inseq saves it: granular, aggregated, gzip-compressed, and as primitives."""
    folder = tmp_path_factory.mktemp("tiny-gpt2")
    model, tokenizer, _ = build_tiny("gpt2", attn_implementation="eager")
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    attributor = inseq.load_model(str(folder), "input_x_gradient")
    out = attributor.attribute(ENGLISH, generation_args={"max_new_tokens": 2, "do_sample": False}, show_progress=False)
    files = {name: folder / f"{name}.json" for name in ("granular", "aggregated", "compressed", "primitives")}
    out.save(files["granular"])
    out.aggregate().save(files["aggregated"])
    out.save(files["compressed"], compress=True)
    out.save(files["primitives"], use_primitives=True)  # plain objects (inseq's load cannot read these)
    return files


def column(answer: dict) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in answer["scores"]], dtype=np.float64)


def test_an_attribution_made_by_inseq_imports_with_equal_numbers(inseq_files, tmp_path):
    reference = inseq.FeatureAttributionOutput.load(inseq_files["granular"])
    expected = reference.aggregate()[0].target_attributions.numpy()  # inseq's own default aggregation
    sequence = reference[0]
    answers = from_inseq(inseq_files["granular"])
    assert len(answers) == sequence.attr_pos_end - sequence.attr_pos_start
    for answer in answers:
        step, query = answer["details"]["inseq"]["step"], answer["query"]
        assert query == sequence.attr_pos_start + step - 1 and answer["method"] == "inseq:input_x_gradient"
        np.testing.assert_allclose(column(answer), expected[: query + 1, step], atol=1e-6, rtol=0)
    first = answers[0]
    assert first["text"] == ENGLISH and "".join(u["text"] for u in first["units"]) == ENGLISH
    assert [u["start"] for u in first["units"]][:3] == [0, 1, 3]  # "T", "he", " " (the Ġ piece)
    assert first["target"]["ids"] == [sequence.target[sequence.attr_pos_start].id]
    for name in ("aggregated", "compressed", "primitives"):
        again = from_inseq(inseq_files[name])
        for mine, theirs in zip(again, answers, strict=True):
            np.testing.assert_allclose(column(mine), column(theirs), atol=1e-6, rtol=0)
    with RunsStore(tmp_path / "store") as store:
        runs = import_inseq(store, inseq_files["granular"], step=0)
        assert [(r.kind, r.origin, r.text) for r in runs] == [("attribution", "import", ENGLISH)]
        stored = store.result(runs[0])
        np.testing.assert_allclose(column(stored), expected[: len(stored["scores"]), 0], atol=1e-6, rtol=0)
        assert stored["provenance"]["method_options"]["imported_from"] == "inseq"
        assert stored["provenance"]["output_hashes"]["scores"] is not None and runs[0].summary.startswith("inseq:")


def test_an_encoder_decoder_attribution_made_by_inseq_imports_over_its_source(tmp_path):
    model, tokenizer, _ = build_tiny("t5", attn_implementation="eager")
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    out = inseq.load_model(str(tmp_path), "saliency").attribute(
        ENGLISH, generation_args={"max_new_tokens": 2, "do_sample": False}, show_progress=False
    )
    out.save(tmp_path / "t5.json")
    expected = out.aggregate()[0].source_attributions.numpy()  # (source tokens, steps)
    answers = from_inseq(tmp_path / "t5.json")
    assert len(answers) == expected.shape[1]
    for step, answer in enumerate(answers):
        assert answer["text"] == ENGLISH and answer["query"] is None and answer["model"]["kind"] == "seq2seq"
        assert answer["units"][-1] == {
            "text": "<eos>",
            "start": None,
            "end": None,
            "tokens": [len(answer["units"]) - 1],
        }
        np.testing.assert_allclose(column(answer), expected[:, step], atol=1e-6, rtol=0)


def test_an_inseq_object_in_memory_imports_too(inseq_files):
    loaded = inseq.FeatureAttributionOutput.load(inseq_files["aggregated"])
    answers = from_inseq(loaded, step=-1)
    expected = loaded[0].target_attributions.numpy()
    np.testing.assert_allclose(column(answers[0]), expected[: answers[0]["query"] + 1, -1], atol=1e-6, rtol=0)


@pytest.mark.parametrize("text", [ENGLISH, CHINESE])
def test_our_attribution_loads_in_inseq_and_comes_back(tmp_path, text):
    model = tiny("gpt2")
    trace = capture(model, text)
    ours = attribution_json(attribute(model, text, "grad-x-input", trace=trace, granularity="token"))
    out = to_inseq(trace, "grad-x-input", model=model)
    out.save(tmp_path / "ours.json")
    loaded = inseq.FeatureAttributionOutput.load(tmp_path / "ours.json")[0]
    assert [t.token for t in loaded.target[:-1]] == [t.text for t in trace.tokens]
    assert [t.id for t in loaded.target[:-1]] == trace.token_ids
    assert loaded.target[-1].token == ours["target"]["text"] and loaded.attr_pos_start == len(trace.tokens)
    scores = loaded.target_attributions.numpy()  # (tokens + 1, 1)
    np.testing.assert_allclose(scores[:-1, 0], np.array(ours["scores"]), atol=1e-6, rtol=1e-6)
    assert np.isnan(scores[-1, 0])
    assert "<table" in loaded.show(display=False, return_html=True)  # inseq draws it
    back = from_inseq(tmp_path / "ours.json")[0]
    assert back["text"] == text and back["target"]["text"] == ours["target"]["text"]
    assert [(u["start"], u["end"]) for u in back["units"]] == [(t.start, t.end) for t in trace.tokens]
    np.testing.assert_allclose(column(back), np.array(ours["scores"]), atol=1e-6, rtol=1e-6)


def test_a_generation_exports_one_step_per_token():
    model = tiny("llama")
    generation = attnscope.generate(model, ENGLISH, max_new_tokens=3)
    expected = step_attribution(model, generation, "attention")
    sequence = to_inseq(generation, "attention")[0]
    assert sequence.attr_pos_start == expected.positions[0] and sequence.attr_pos_end == len(generation.tokens)
    matrix = sequence.target_attributions.numpy()
    for step, position in enumerate(expected.positions):
        np.testing.assert_allclose(matrix[:position, step], expected.scores[step, :position], atol=1e-6, rtol=1e-6)
        assert np.isnan(matrix[position:, step]).all()
    probs = [s.prob for s in generation.steps]
    np.testing.assert_allclose(sequence.step_scores["probability"].numpy(), probs, rtol=1e-6)


def test_token_pieces_of_each_convention_find_their_place():
    tokenizer = build_tiny("gpt2", attn_implementation="eager")[1]
    ids = tokenizer(CHINESE)["input_ids"]
    pieces = tokenizer.convert_ids_to_tokens(ids)  # byte-level: 我 is three pieces
    trace = capture(tiny("gpt2"), CHINESE)
    assert place_tokens(pieces, CHINESE) == [(t.start, t.end) for t in trace.tokens]
    assert place_tokens(["▁The", "▁capital", "</s>"], "The capital") == [(0, 3), (3, 11), None]
    assert place_tokens(["<0xE6>", "<0x88>", "<0x91>", "爱"], "我爱") == [(0, 1), (1, 1), (1, 1), (1, 2)]
    assert place_tokens(["[CLS]", "the", "cap", "##ital", "[SEP]"], "the capital") == [
        None, (0, 3), (4, 7), (7, 11), None,
    ]  # fmt: skip
    assert place_tokens(["Paris"], "London") is None


def _bad_files(tmp_path: Path, good: Path) -> list[tuple[Path, str]]:
    data = json.loads(good.read_text())
    cases: list[tuple[str, bytes, str]] = [
        ("other.json", b'{"hello": 1}', "not an inseq attribution file"),
        ("list.json", b"[1, 2]", "not an inseq attribution file"),
        ("cut.json", good.read_bytes()[:5000], "not an inseq attribution file (not JSON"),
        ("junk.json", bytes(range(256)) * 4, "not an inseq attribution file (not JSON"),
        ("gz.json", b"\x1f\x8b\x08\x00" + b"junk" * 20, "damaged gzip"),
    ]
    foreign = json.loads(json.dumps(data))
    foreign["__instance_type__"] = ["os", "system"]
    cases.append(("foreign.json", json.dumps(foreign).encode(), "not one of inseq's attribution classes"))
    shapes = json.loads(json.dumps(data))
    shapes["attributes"]["sequence_attributions"][0]["attributes"]["attr_pos_start"] = 24
    cases.append(("shapes.json", json.dumps(shapes).encode(), "target_attributions has shape"))
    broken = json.loads(json.dumps(data))
    broken["attributes"]["sequence_attributions"][0]["attributes"]["target_attributions"] = "@@not base64@@"
    cases.append(("blob.json", json.dumps(broken).encode(), "not a base64 safetensors tensor"))
    files = []
    for name, content, message in cases:
        (tmp_path / name).write_bytes(content)
        files.append((tmp_path / name, message))
    huge = tmp_path / "huge.json"
    with huge.open("wb") as handle:  # a sparse file: no disk used, 300 MB long
        handle.truncate(300 * 1024 * 1024)
    files.append((huge, "an inseq file is read up to"))
    return files


def test_bad_files_are_refused_in_one_line_and_store_nothing(inseq_files, tmp_path):
    with RunsStore(tmp_path / "store") as store:
        for path, message in _bad_files(tmp_path, inseq_files["aggregated"]):
            with pytest.raises(InputError, match=re.escape(message)) as refused:
                import_inseq(store, path)
            assert "\n" not in str(refused.value), path
        with pytest.raises(InputError, match="step 9 out of range"):
            import_inseq(store, inseq_files["aggregated"], step=9)
        assert store.list()[1] == 0
    compressed = gzip.decompress(inseq_files["compressed"].read_bytes())
    assert json.loads(compressed)["__instance_type__"][1] == "FeatureAttributionOutput"


def test_answers_without_an_inseq_form_are_refused():
    model = tiny("gpt2")
    words = attribution_json(attribute(model, ENGLISH, "attention", granularity="word"))
    with pytest.raises(InputError, match="per token"):
        to_inseq(words)
    with pytest.raises(InputError, match="needs the attribution method"):
        to_inseq(capture(model, ENGLISH))
    masked = attribution_json(attribute(tiny("bert"), ENGLISH, "attention", granularity="token"))
    with pytest.raises(InputError, match="causal"):
        to_inseq(masked)


def test_an_attribution_without_a_finite_score_or_with_too_many_steps_is_refused(inseq_files, monkeypatch):
    """All-NaN scores (inseq's own object, every score set to NaN) import as nothing, with a reason; a
    file with more attributed steps than one import takes is refused before anything is built."""
    import attnscope.render.inseq_io as inseq_io

    out = inseq.FeatureAttributionOutput.load(str(inseq_files["aggregated"]))
    steps = len(from_inseq(out))  # one answer per attributed step of every sequence
    assert steps > len(out.sequence_attributions)
    monkeypatch.setattr(inseq_io, "MAX_IMPORTED_STEPS", steps - 1)
    with pytest.raises(InputError, match=f"holds {steps} attributed steps; one import takes at most {steps - 1}"):
        from_inseq(out)
    assert len(from_inseq(out, step=0)) == len(out.sequence_attributions)
    monkeypatch.undo()
    for seq in out.sequence_attributions:
        seq.target_attributions[:] = float("nan")
    with pytest.raises(InputError, match="no finite score"):
        from_inseq(out)
