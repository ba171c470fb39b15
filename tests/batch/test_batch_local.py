"""The corpus atlas on the local engine: the corpus checks, and every stored number against an
independent computation (transformers' own eager forward of the same tiny model, numpy head metrics
written out in tests/analysis, numpy statistics), resuming, refusals and stored runs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from attnscope.batch import layout
from attnscope.batch.analyse import AtlasOptions
from attnscope.batch.corpus import read_corpus
from attnscope.batch.engines import build_atlas
from attnscope.errors import InputError
from tests.analysis.test_rollout_and_heads import reference_metrics
from tests.conftest import CHINESE, ENGLISH, tiny

PHONE_TEXT = "Call me at 13812345678 please"
PROMPTS = [
    {"text": ENGLISH, "id": "fr"},
    {"text": CHINESE},
    {"text": PHONE_TEXT, "id": "phone"},
    {"text": "Ein kurzer Satz über nichts."},
    {"text": "a b a b a b"},
]


def write_corpus(folder: Path, rows: list[dict] = PROMPTS, name: str = "corpus.jsonl") -> Path:
    path = folder / name
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    return path


def table_of(folder: Path, part: str) -> pa.Table:
    index = json.loads((folder / layout.INDEX).read_text(encoding="utf-8"))
    return pa.concat_tables([pq.read_table(folder / shard["files"][part]) for shard in index["shards"]])


# ---- the corpus ---------------------------------------------------------------------------------------
def test_layout_names_the_metrics_of_attnscope_heads():
    from attnscope.analysis.heads import METRICS

    assert layout.HEAD_METRICS == METRICS
    assert layout.shard_id(7) == "shard-00007" and layout.is_shard_id("shard-00007")
    assert not layout.is_shard_id("../shard-00007")


def test_corpus_reads_jsonl_and_txt(tmp_path):
    corpus = read_corpus(write_corpus(tmp_path))
    assert [p.id for p in corpus.prompts] == ["fr", "1", "phone", "3", "4"]
    assert corpus.prompts[1].text == CHINESE and corpus.prompts[2].index == 2
    plain = tmp_path / "prompts.txt"
    plain.write_bytes(f"{ENGLISH}\r\n\n{CHINESE}\n".encode())
    read = read_corpus(plain)
    assert [(p.id, p.text) for p in read.prompts] == [("0", ENGLISH), ("1", CHINESE)]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'{"text": "ok"}\n{"text": "unclosed}\n', "line 2: not valid JSON"),
        (b'{"text": "ok"}\n{"text": "bad \xff byte"}\n', "line 2: not valid UTF-8"),
        (b'{"text": "lone \\ud800 surrogate"}\n', 'line 1: "text" holds a lone surrogate (U+D800)'),
        (b'{"text": "   "}\n', 'line 1: "text" is empty or blank'),
        (b'{"text": ""}\n', 'line 1: "text" is empty or blank'),
        (b'{"id": "x"}\n', 'line 1: no "text"'),
        (b'{"text": 5}\n', '"text" must be a string'),
        (b'["a list"]\n', "line 1: expected a JSON object"),
        (b'{"text": "a", "colour": 1}\n', "line 1: unknown field 'colour'"),
        (b'{"text": "a", "id": "x"}\n{"text": "b", "id": "x"}\n', "line 2: id 'x' is used twice (first on line 1)"),
        (b'{"text": "a", "id": true}\n', '"id" must be a string or an integer'),
        (b"\n\n", "has no prompts"),
        (json.dumps({"text": "x" * 100_001}).encode(), 'line 1: "text" is 100,001 characters'),
    ],
)
def test_corpus_refusals_name_the_line(tmp_path, content, message):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(content)
    with pytest.raises(InputError, match=None) as refused:
        read_corpus(path)
    assert message in str(refused.value) and "\n" not in str(refused.value)


def test_corpus_that_cannot_be_read(tmp_path):
    with pytest.raises(InputError, match="cannot read the corpus"):
        read_corpus(tmp_path / "missing.jsonl")


# ---- the numbers ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def local_atlas(tmp_path_factory):
    folder = tmp_path_factory.mktemp("atlas")
    corpus = read_corpus(write_corpus(folder))
    out = folder / "ATLAS"
    index = build_atlas(corpus, "tiny:llama", out, AtlasOptions(methods=("attention",), top_k=4), shard_size=2)
    return out, index


def eager_reference(text: str) -> dict:
    """The tiny llama's own eager forward in transformers (not attnscope's capture): attention maps,
    next-token probabilities after the last token, tokens."""
    from attnscope.models.tiny import build_tiny

    model, tokenizer, _ = build_tiny("llama", attn_implementation="eager")
    ids = tokenizer(text, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        out = model(input_ids=ids, output_attentions=True)
    maps = np.stack([a[0].double().numpy() for a in out.attentions])  # (layers, heads, query, key)
    probs = torch.softmax(out.logits[0, -1].double(), dim=-1).numpy()  # (vocab,)
    return {"maps": maps, "probs": probs, "ids": ids[0].tolist(), "tokenizer": tokenizer}


def test_local_atlas_index_and_files(local_atlas):
    out, index = local_atlas
    assert index["format"] == "attnscope-atlas" and index["schema_version"] == 1 and index["complete"]
    assert [s["id"] for s in index["shards"]] == ["shard-00000", "shard-00001", "shard-00002"]
    assert [(s["first"], s["last"]) for s in index["shards"]] == [(0, 1), (2, 3), (4, 4)]
    assert index["model"]["num_layers"] == 3 and index["model"]["num_heads"] == 4
    assert index["corpus"]["prompts"] == 5 and index["methods"] == ["attention"] and index["top_k"] == 4
    assert index["provenance"]["model_spec"] == "tiny:llama" and index["provenance"]["masking_policy"] == "mask"
    assert json.loads((out / "atlas.json").read_text(encoding="utf-8")) == index
    prompts, heads = table_of(out, "prompts"), table_of(out, "heads")
    assert prompts.schema.equals(layout.prompts_schema(["attention"]))
    assert heads.schema.equals(layout.heads_schema())
    assert prompts["prompt_index"].to_pylist() == [0, 1, 2, 3, 4]
    assert heads.num_rows == 5 * 3 * 4
    keys = list(zip(*(heads[c].to_pylist() for c in ("prompt_index", "layer", "head")), strict=True))
    assert len(set(keys)) == len(keys)  # no row twice
    texts = prompts["text"].to_pylist()
    assert texts[0] == ENGLISH and texts[1] == CHINESE  # Chinese kept exactly
    assert "13812345678" not in texts[2] and "[PHONE]" in texts[2]  # personal data masked on disk
    assert not any("138" in token for token in prompts["tokens"].to_pylist()[2])
    for shard in index["shards"]:
        from attnscope.batch.shards import file_sha256

        assert all(file_sha256(out / shard["files"][p]) == shard["sha256"][p] for p in ("prompts", "heads"))


def test_local_atlas_numbers_equal_an_eager_forward(local_atlas):
    out, _ = local_atlas
    prompts, heads = table_of(out, "prompts").to_pylist(), table_of(out, "heads")
    for row in prompts[:3]:  # English, Chinese, the masked one
        expected = eager_reference(PROMPTS[row["prompt_index"]]["text"])
        n = len(expected["ids"])
        assert row["n_tokens"] == n
        if row["prompt_index"] == 0:
            assert "".join(row["tokens"][1:]) == ENGLISH == expected["tokenizer"].decode(expected["ids"][1:])
        # predictions: the top 4 of the eager softmax after the last token
        best = np.argsort(-expected["probs"])[:4]
        np.testing.assert_allclose(row["top_probs"], expected["probs"][best], atol=1e-6)
        # the attention method: the last row's weights, mean over layers and heads
        np.testing.assert_allclose(row["score_attention"], expected["maps"][:, :, -1, :].mean(axis=(0, 1)), atol=1e-6)
        # head metrics of every layer x head
        mine = heads.filter(pa.compute.equal(heads["prompt_index"], row["prompt_index"]))
        assert mine["layer"].to_pylist() == [layer for layer in range(3) for _ in range(4)]
        assert mine["head"].to_pylist() == [head for _ in range(3) for head in range(4)]
        for layer in range(3):
            reference = reference_metrics(expected["maps"][layer])
            for metric, values in reference.items():
                stored = mine[metric].to_numpy()[layer * 4 : (layer + 1) * 4]
                np.testing.assert_allclose(stored, values, atol=1e-5, err_msg=f"{metric} layer {layer}")


def test_summary_equals_numpy_over_the_heads_rows(local_atlas):
    out, index = local_atlas
    heads = table_of(out, "heads")
    summary = pq.read_table(out / layout.SUMMARY)
    assert summary.schema.equals(layout.summary_schema())
    assert summary.num_rows == 3 * 4 * len(layout.HEAD_METRICS)
    rows = {(r["layer"], r["head"], r["metric"]): r for r in summary.to_pylist()}
    layer_of, head_of = heads["layer"].to_numpy(), heads["head"].to_numpy()
    for metric in layout.HEAD_METRICS:
        every = heads[metric].to_numpy().astype(np.float64)
        edges = np.asarray(index["bins"][metric])
        assert len(edges) == layout.HISTOGRAM_BINS + 1
        assert edges[0] == every.min() and edges[-1] == pytest.approx(every.max())
        for layer in range(3):
            for head in range(4):
                values = every[(layer_of == layer) & (head_of == head)]  # one per prompt
                row = rows[(layer, head, metric)]
                assert row["count"] == 5
                assert row["mean"] == pytest.approx(values.mean(), abs=1e-12)
                assert row["std"] == pytest.approx(values.std(), abs=1e-12)
                assert row["p25"] == pytest.approx(np.percentile(values, 25), abs=1e-12)
                assert (row["min"], row["max"]) == (values.min(), values.max())
                assert row["histogram"] == np.histogram(values, bins=edges)[0].tolist()
                assert sum(row["histogram"]) == 5


# ---- resuming, refusals, stored runs -------------------------------------------------------------------
def test_rerun_keeps_whole_shards_and_redoes_a_missing_one(tmp_path, local_atlas):
    reference, _ = local_atlas
    corpus = read_corpus(write_corpus(tmp_path))
    out = tmp_path / "ATLAS"
    model = tiny("llama")
    options = AtlasOptions(methods=("attention",), top_k=4)
    build_atlas(corpus, "tiny:llama", out, options, shard_size=2, model=model)
    first = json.loads((out / layout.INDEX).read_text(encoding="utf-8"))
    # as if killed after shard 1's files were renamed but before the index named it (and a temp file left)
    cut = {**first, "shards": first["shards"][:1], "complete": False}
    (out / layout.INDEX).write_text(json.dumps(cut), encoding="utf-8")
    (out / "heads" / ".shard-00001.parquet.abc.tmp").write_bytes(b"half a file")
    kept = (out / "prompts" / "shard-00000.parquet").stat().st_mtime_ns
    index = build_atlas(corpus, "tiny:llama", out, options, shard_size=2, model=model)
    assert (out / "prompts" / "shard-00000.parquet").stat().st_mtime_ns == kept  # not redone
    assert [s["sha256"] for s in index["shards"]] == [s["sha256"] for s in first["shards"]]
    assert not list((out / "heads").glob("*.tmp"))
    assert table_of(out, "heads").equals(table_of(reference, "heads"))
    assert table_of(out, "prompts").equals(table_of(reference, "prompts"))
    # a complete atlas whose shard file was changed since: that shard is redone, the summary rebuilt
    (out / "heads" / "shard-00002.parquet").write_bytes(b"not parquet")
    (out / layout.SUMMARY).unlink()
    again = build_atlas(corpus, "tiny:llama", out, options, shard_size=2, model=model)
    assert again["complete"] and [s["sha256"] for s in again["shards"]] == [s["sha256"] for s in first["shards"]]
    assert pq.read_table(out / layout.SUMMARY).equals(pq.read_table(reference / layout.SUMMARY))


def test_another_atlas_in_the_folder_is_refused_and_left_alone(tmp_path):
    corpus = read_corpus(write_corpus(tmp_path, PROMPTS[:2]))
    out = tmp_path / "ATLAS"
    model = tiny("llama")
    build_atlas(corpus, "tiny:llama", out, AtlasOptions(top_k=3), model=model)
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    for options, changed in (
        (AtlasOptions(top_k=4), "top_k"),
        (AtlasOptions(top_k=3, methods=("rollout",)), "methods"),
        (AtlasOptions(top_k=3, store=True), "options"),
    ):
        with pytest.raises(InputError, match=f"holds another atlas \\(its {changed} differs\\)"):
            build_atlas(corpus, "tiny:llama", out, options, model=model)
    other = read_corpus(write_corpus(tmp_path, PROMPTS[2:], "other.jsonl"))
    with pytest.raises(InputError, match="its corpus differs"):
        build_atlas(other, "tiny:llama", out, AtlasOptions(top_k=3), model=model)
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    replaced = build_atlas(other, "tiny:llama", out, AtlasOptions(top_k=3), model=model, overwrite=True)
    assert replaced["corpus"]["prompts"] == 3 and table_of(out, "prompts").num_rows == 3
    stranger = tmp_path / "mine"
    stranger.mkdir()
    (stranger / "notes.txt").write_text("keep me", encoding="utf-8")
    with pytest.raises(InputError, match="not empty and holds no atlas"):
        build_atlas(corpus, "tiny:llama", stranger, AtlasOptions(), model=model, overwrite=True)
    assert [p.name for p in stranger.iterdir()] == ["notes.txt"]


@pytest.mark.parametrize(
    ("options", "kwargs", "message"),
    [
        (AtlasOptions(methods=("head-metrics",)), {}, "head-metrics gives no token scores"),
        (AtlasOptions(methods=("nope",)), {}, "nope"),
        (AtlasOptions(methods=("attention", "attention")), {}, "names a method twice"),
        (AtlasOptions(top_k=0), {}, "--top-k must be between 1 and 100"),
        (AtlasOptions(threshold=1.5), {}, "--threshold must be between 0 and 1"),
        (AtlasOptions(pii_policy="hash"), {}, "an atlas takes mask or off"),
        (AtlasOptions(), {"workers": 2}, "--workers is for --engine ray"),
        (AtlasOptions(), {"shard_size": 0}, "--shard-size must be between 1"),
        (AtlasOptions(), {"engine": "spark"}, "unknown engine 'spark'"),
    ],
)
def test_bad_options_are_refused_before_anything_is_written(tmp_path, options, kwargs, message):
    corpus = read_corpus(write_corpus(tmp_path, PROMPTS[:1]))
    with pytest.raises(InputError, match=None) as refused:
        build_atlas(corpus, "tiny:llama", tmp_path / "ATLAS", options, model=tiny("llama"), **kwargs)
    assert message in str(refused.value)
    assert not (tmp_path / "ATLAS").exists()


def test_flow_length_limit_is_refused_before_any_shard(tmp_path):
    corpus = read_corpus(write_corpus(tmp_path, [{"text": "short"}, {"text": "word " * 200, "id": "long"}]))
    with pytest.raises(InputError, match=r"prompt 'long' \(index 1\) has .* tokens; flow is limited to 256"):
        build_atlas(corpus, "tiny:llama", tmp_path / "ATLAS", AtlasOptions(methods=("flow",)), model=tiny("llama"))
    assert not (tmp_path / "ATLAS").exists()


def test_stored_runs_are_masked_linked_and_never_stored_twice(tmp_path):
    from attnscope.store.runs import RunsStore

    corpus = read_corpus(write_corpus(tmp_path, PROMPTS[:3]))
    out = tmp_path / "ATLAS"
    options = AtlasOptions(store=True, top_k=3)
    model = tiny("llama")
    with RunsStore() as store:
        before = store.list(limit=10_000)[1]
    index = build_atlas(corpus, "tiny:llama", out, options, shard_size=2, model=model, origin="cli")
    run_ids = table_of(out, "prompts")["run_id"].to_pylist()
    assert all(run_ids) and len(set(run_ids)) == 3
    with RunsStore() as store:
        assert store.list(limit=10_000)[1] == before + 3
        phone = store.get(run_ids[2])
        assert phone.kind == "analysis" and "13812345678" not in phone.text and "[PHONE]" in phone.text
        assert store.result(phone)["text"] == phone.text
        assert store.get(run_ids[1]).text == CHINESE
    # killed after the last shard's runs were stored but before the index named the shard: redo it
    cut = {**index, "shards": index["shards"][:1], "complete": False}
    (out / layout.INDEX).write_text(json.dumps(cut), encoding="utf-8")
    build_atlas(corpus, "tiny:llama", out, options, shard_size=2, model=model, origin="cli")
    assert table_of(out, "prompts")["run_id"].to_pylist() == run_ids
    with RunsStore() as store:
        assert store.list(limit=10_000)[1] == before + 3


@pytest.mark.slow
def test_smollm2_atlas_equals_plain_transformers(tmp_path):
    """End to end on the packaged model: the atlas's predictions, attention scores and head metrics
    against transformers' own GGUF loading and eager forward (tests/test_real_models.py)."""
    from tests.conftest import packaged
    from tests.test_real_models import reference_forward, reference_gguf

    model = packaged("smollm2-135m")
    texts = [ENGLISH, "The quick brown fox jumps over the lazy dog, and then it sleeps."]
    corpus = read_corpus(write_corpus(tmp_path, [{"text": text} for text in texts]))
    options = AtlasOptions(methods=("attention",), top_k=5)
    build_atlas(corpus, "smollm2-135m", tmp_path / "A", options, model=model)
    reference_model, reference_tokenizer = reference_gguf("smollm2-135m")
    prompts, heads = table_of(tmp_path / "A", "prompts").to_pylist(), table_of(tmp_path / "A", "heads")
    assert prompts[0]["predicted"] == " Paris"
    for row, text in zip(prompts, texts, strict=True):
        ids, attentions, probs = reference_forward(reference_model, reference_tokenizer, text)
        assert row["n_tokens"] == len(ids)
        best = np.argsort(-probs)[:5]
        np.testing.assert_allclose(row["top_probs"], probs[best], atol=1e-4)
        np.testing.assert_allclose(row["score_attention"], attentions[:, :, -1, :].mean(axis=(0, 1)), atol=1e-4)
        mine = heads.filter(pa.compute.equal(heads["prompt_index"], row["prompt_index"]))
        assert mine.num_rows == 30 * 9
        for layer in range(30):
            reference = reference_metrics(attentions[layer].astype(np.float64))
            for metric, values in reference.items():
                stored = mine[metric].to_numpy()[layer * 9 : (layer + 1) * 9]
                np.testing.assert_allclose(stored, values, atol=1e-3, err_msg=f"{metric} layer {layer}")
