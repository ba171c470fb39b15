"""Reading a corpus atlas (attnscope.batch.reading): against an atlas the real ``attnscope batch`` wrote,
every number is checked with an independent computation — numpy on the raw heads rows read here with
pyarrow, robust z by hand with the statistics module — and a foreign, corrupt or rewritten atlas is
refused (one line) or re-read, never mixed."""

from __future__ import annotations

import json
import shutil
import statistics
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from attnscope.batch import layout
from attnscope.batch.atlas_index import AtlasFormatError, AtlasQueryError
from attnscope.batch.reading import Atlas, robust_z
from attnscope.batch.shelf import AtlasShelf
from attnscope.errors import InputError, NotFoundError
from tests.batch.atlas_files import CORPUS, run_batch, write_atlas
from tests.conftest import CHINESE


@pytest.fixture(scope="module")
def real_atlas(tmp_path_factory) -> Path:
    return run_batch(tmp_path_factory.mktemp("batch"), "--store")


def raw_cube(folder: Path, metric: str, layers: int, heads: int) -> dict[tuple[int, int], dict[int, float]]:
    """{(layer, head): {prompt_index: value}} straight from the heads shards atlas.json lists."""
    index = json.loads((folder / layout.INDEX).read_text("utf-8"))
    cube: dict[tuple[int, int], dict[int, float]] = {
        (layer, head): {} for layer in range(layers) for head in range(heads)
    }
    for shard in index["shards"]:
        table = pq.read_table(folder / shard["files"]["heads"]).to_pydict()
        for prompt, layer, head, value in zip(
            table["prompt_index"], table["layer"], table["head"], table[metric], strict=True
        ):
            if value is not None and np.isfinite(value):
                cube[(layer, head)][prompt] = float(np.float32(value))
    return cube


def hand_z(values: list[float]) -> list[float]:
    median = statistics.median(values)
    mad = statistics.median([abs(v - median) for v in values])
    return [(v - median) / (1.4826 * mad) for v in values]


def test_real_atlas_distributions_and_grid_match_numpy_on_the_raw_rows(real_atlas):
    atlas = Atlas.open(real_atlas)
    assert atlas.complete and (atlas.layers, atlas.heads) == (3, 4) and atlas.describe()["prompts"] == len(CORPUS)
    grid = atlas.grid()
    for metric in atlas.metrics:
        cube = raw_cube(real_atlas, metric, 3, 4)
        for (layer, head), by_prompt in cube.items():
            values = np.array(list(by_prompt.values()), dtype=np.float64)
            answer = atlas.head(layer, head, metric, top=3)
            d = answer["distribution"]
            assert d["source"] == "summary" and d["count"] == len(values) == len(CORPUS)
            expected = dict(
                zip(
                    ["p05", "p25", "p50", "p75", "p95"], np.quantile(values, [0.05, 0.25, 0.5, 0.75, 0.95]), strict=True
                )
            )
            expected |= {"mean": values.mean(), "std": values.std(), "min": values.min(), "max": values.max()}
            for name, value in expected.items():
                assert d[name] == pytest.approx(value, rel=1e-9, abs=1e-12), (metric, layer, head, name)
            edges = np.array(d["histogram"]["edges"])
            assert np.array_equal(d["histogram"]["counts"], np.histogram(values, bins=edges)[0])
            assert grid[metric]["mean"][layer][head] == pytest.approx(values.mean(), rel=1e-9, abs=1e-12)
            assert grid[metric]["count"][layer][head] == len(values)


def test_unusual_prompts_are_the_largest_robust_z_computed_by_hand(real_atlas):
    from attnscope.store.runs import RunsStore

    atlas = Atlas.open(real_atlas)
    for metric, layer, head in [("entropy", 1, 2), ("sink", 0, 0), ("locality", 2, 3)]:
        by_prompt = raw_cube(real_atlas, metric, 3, 4)[(layer, head)]
        prompts, values = list(by_prompt), list(by_prompt.values())
        z = hand_z(values)
        order = sorted(range(len(z)), key=lambda i: (-abs(z[i]), prompts[i]))[:4]
        answer = atlas.head(layer, head, metric, top=4)
        assert [p["prompt_index"] for p in answer["unusual"]] == [prompts[i] for i in order]
        for shown, i in zip(answer["unusual"], order, strict=True):
            assert shown["z"] == pytest.approx(z[i], rel=1e-9) and shown["value"] == pytest.approx(values[i], rel=1e-7)
            assert shown["text"] == CORPUS[shown["prompt_index"]] and shown["prompt_id"] == f"q{shown['prompt_index']}"
            run = RunsStore().get(shown["run_id"])  # --store: the prompt's analysis is a stored run
            assert run.text == CORPUS[shown["prompt_index"]] and run.model_spec == "tiny:llama"
        assert answer["robust"]["median"] == pytest.approx(statistics.median(values), rel=1e-9)


def test_a_prompt_answer_holds_what_batch_stored_chinese_exact(real_atlas):
    atlas = Atlas.open(real_atlas)
    prompt = atlas.prompt(1)
    assert prompt["text"] == CHINESE and prompt["prompt_id"] == "q1" and prompt["run_id"]
    assert len(prompt["tokens"]) == prompt["n_tokens"] and len(prompt["top"]) == atlas.index["top_k"]
    probs = [c["prob"] for c in prompt["top"]]
    assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-6
    table = pq.read_table(real_atlas / "prompts" / "shard-00000.parquet").to_pylist()[1]
    assert prompt["top"][0] == {"token": table["top_tokens"][0], "prob": table["top_probs"][0]}
    with pytest.raises(NotFoundError, match=r"prompt 8 is not in atlas atlas \(it holds prompts 0–2, 3–5, 6–7\)"):
        atlas.prompt(len(CORPUS))


def test_a_partial_atlas_opens_labelled_and_computes_from_the_shards_it_lists(real_atlas, tmp_path):
    partial = tmp_path / "partial"
    shutil.copytree(real_atlas, partial)
    index = json.loads((partial / layout.INDEX).read_text("utf-8"))
    index["shards"] = index["shards"][:2]  # as the index reads while the third shard is being written
    index["complete"] = False
    for key in ("summary", "bins"):
        index.pop(key)
    (partial / layout.SUMMARY).unlink()
    (partial / layout.INDEX).write_text(json.dumps(index), "utf-8")
    atlas = Atlas.open(partial)
    assert not atlas.complete and atlas.describe()["prompts"] == 6
    cube = raw_cube(partial, "entropy", 3, 4)
    everything = np.concatenate([np.array(list(v.values())) for v in cube.values()])
    values = np.array(list(cube[(2, 1)].values()))
    d = atlas.head(2, 1, "entropy")["distribution"]
    assert d["source"] == "shards" and d["count"] == 6
    assert d["p25"] == pytest.approx(np.quantile(values, 0.25), rel=1e-9) and d["std"] == pytest.approx(values.std())
    edges = np.linspace(everything.min(), everything.max(), layout.HISTOGRAM_BINS + 1)  # the metric's range, all heads
    assert (
        np.allclose(d["histogram"]["edges"], edges)
        and d["histogram"]["counts"] == np.histogram(values, edges)[0].tolist()
    )
    assert atlas.grid()["entropy"]["mean"][2][1] == pytest.approx(values.mean())
    with pytest.raises(NotFoundError):
        atlas.prompt(6)  # written to disk perhaps, but not in the index: not read


def test_robust_z_rules_when_mad_is_zero():
    z, robust = robust_z(np.array([1.0, 1.0, 1.0, 1.0, 5.0]))
    assert robust["rule"] == "mean_ad" and robust["mad"] == 0
    assert z[-1] == pytest.approx((5 - 1) / (1.253314 * (4 / 5))) and z[0] == 0
    z, robust = robust_z(np.array([2.0, 2.0, 2.0]))
    assert robust["rule"] == "constant" and list(z) == [0, 0, 0]


def test_hand_written_atlas_plants_its_outlier_first(tmp_path):
    made = write_atlas(tmp_path / "hand", prompts=10)
    answer = Atlas.open(tmp_path / "hand").head(1, 2, "entropy", top=2)
    assert answer["unusual"][0]["prompt_index"] == 3 and answer["unusual"][0]["value"] == 9.0
    values = made["values"][:, 1, 2, 0].astype(np.float64).tolist()
    assert answer["unusual"][0]["z"] == pytest.approx(hand_z(values)[3])


def _edit(folder: Path, change) -> None:
    index = json.loads((folder / layout.INDEX).read_text("utf-8"))
    change(index)
    (folder / layout.INDEX).write_text(json.dumps(index), "utf-8")


BAD = {
    "not JSON": (lambda f: (f / layout.INDEX).write_bytes(b"{not json"), "is not valid JSON"),
    "not UTF-8": (lambda f: (f / layout.INDEX).write_bytes(b'{"format": "\xff"}'), "is not valid JSON"),
    "foreign": (lambda f: _edit(f, lambda i: i.update(format="other")), "not an attnscope atlas index"),
    "newer": (
        lambda f: _edit(f, lambda i: i.update(schema_version=2)),
        "schema version 2; this attnscope reads version 1",
    ),
    "path escape": (
        lambda f: _edit(f, lambda i: i["shards"][0]["files"].update(heads="../../etc/passwd")),
        "shard-00000: its files must be",
    ),
    "overlap": (lambda f: _edit(f, lambda i: i["shards"][1].update(first=0)), "shard-00001: first and last"),
    "no bins": (lambda f: _edit(f, lambda i: i.pop("bins")), "histogram bin edges"),
    "huge model": (  # would make the reader allocate (layers, heads) arrays of 10^14 cells
        lambda f: _edit(f, lambda i: i["model"].update(num_layers=10**7, num_heads=10**7)),
        "must be at most 1,000 and 1,000",
    ),
    "no index": (lambda f: (f / layout.INDEX).unlink(), "is not an atlas folder: it has no atlas.json"),
}


@pytest.mark.parametrize("fault", sorted(BAD))
def test_a_bad_index_is_refused_in_one_line(tmp_path, fault):
    write_atlas(tmp_path / "a")
    spoil, message = BAD[fault]
    spoil(tmp_path / "a")
    with pytest.raises(AtlasFormatError, match=message) as caught:
        Atlas.open(tmp_path / "a")
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("fault", ["corrupt", "missing", "rows", "no summary"])
def test_a_bad_shard_is_refused_when_read_in_one_line(tmp_path, fault):
    write_atlas(tmp_path / "a")
    heads = tmp_path / "a" / "heads" / "shard-00001.parquet"
    if fault == "corrupt":
        heads.write_bytes(heads.read_bytes()[:-20] + b"\0" * 20)
    elif fault == "missing":
        heads.unlink()
    elif fault == "rows":
        _edit(tmp_path / "a", lambda i: i["shards"][1]["rows"].update(heads=5))
    else:
        (tmp_path / "a" / layout.SUMMARY).unlink()
    atlas = Atlas.open(tmp_path / "a")
    message = {
        "corrupt": "does not match its checksum", "missing": "shard-00001.parquet is missing",
        "rows": "has 24 rows; atlas.json says 5", "no summary": "marked complete but has no summary",
    }[fault]  # fmt: skip
    with pytest.raises(AtlasFormatError, match=message):
        atlas.head(0, 0, "entropy") if fault != "no summary" else atlas.grid()


def test_bad_queries_are_refused(tmp_path):
    write_atlas(tmp_path / "a", layers=2, heads=3)
    atlas = Atlas.open(tmp_path / "a")
    with pytest.raises(AtlasQueryError, match="metric 'induction' is not in atlas a; it has entropy"):
        atlas.head(0, 0, "induction")
    for layer, head in [(2, 0), (0, 3)]:
        with pytest.raises(NotFoundError, match=f"layer {layer}, head {head} is not in atlas a .2 layers x 3 heads"):
            atlas.head(layer, head, "entropy")


def test_the_shelf_serves_by_name_and_rereads_a_rewritten_atlas(tmp_path):
    first = write_atlas(tmp_path / "one", seed=1)
    write_atlas(tmp_path / "two", seed=2)
    shelf = AtlasShelf([tmp_path / "one", tmp_path / "two"])
    assert shelf.names() == ["one", "two"]
    before = shelf.get("one")
    assert shelf.get("one") is before  # unchanged: the same version, its caches kept
    assert shelf.read("one", lambda a: a.head(0, 1, "sink")["distribution"]["mean"]) == pytest.approx(
        first["values"][:, 0, 1, 3].astype(np.float64).mean()
    )
    rewritten = write_atlas(tmp_path / "one", seed=7, prompts=7)  # a new run into the same folder
    after = shelf.get("one")
    assert after is not before and after.version != before.version and after.describe()["prompts"] == 7
    assert shelf.read("one", lambda a: a.head(0, 1, "sink")["distribution"]["mean"]) == pytest.approx(
        rewritten["values"][:, 0, 1, 3].astype(np.float64).mean()
    )
    with pytest.raises(NotFoundError, match="no atlas named 'three'; this server has one, two"):
        shelf.get("three")
    (tmp_path / "other").mkdir()
    shutil.copytree(tmp_path / "two", tmp_path / "other" / "two")
    with pytest.raises(InputError, match="two atlases are named 'two'"):
        AtlasShelf([tmp_path / "two", tmp_path / "other" / "two"])


def test_a_shard_replaced_under_an_open_version_is_read_from_the_new_index(tmp_path):
    write_atlas(tmp_path / "a", seed=1)
    shelf = AtlasShelf([tmp_path / "a"])
    stale = shelf.get("a")
    fresh = write_atlas(tmp_path / "a", seed=3)  # shards and index rewritten after the version was opened
    shelf._open["a"] = stale  # as if the index changed between the shelf's check and the shard's read
    mean = shelf.read("a", lambda a: float(np.mean(a.head_values(1, 1, "entropy")[1])))
    assert mean == pytest.approx(fresh["values"][:, 1, 1, 0].astype(np.float64).mean())


def test_an_atlas_of_catalogue_methods_with_hyphens_opens(tmp_path):
    """Method names like grad-x-input are catalogue names (hyphens): the reader takes them, and the
    prompt's scores come back under that name (one per token, as many as the prompt's tokens)."""
    folder = run_batch(tmp_path, "--methods", "grad-x-input")
    atlas = Atlas.open(folder)
    assert atlas.methods == ["grad-x-input"]
    prompt = atlas.prompt(0)
    scores = prompt["scores"]["grad-x-input"]
    assert len(scores) == prompt["n_tokens"] and all(np.isfinite(scores))
