"""``attnscope compare``: two models (or a model and its adapter) on one text, and two texts on one
model compared on their whole maps, run as real subprocesses."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from attnscope.methods.compare_models import compare_two_models
from attnscope.models.adapters import with_adapter
from attnscope.models.tiny import build_tiny
from attnscope.render.json import model_comparison_json
from tests.conftest import CHINESE, ENGLISH, tiny
from tests.models.test_adapters import build_lora
from tests.test_cli import run


@pytest.fixture(scope="module")
def lora(tmp_path_factory):
    return build_lora(tmp_path_factory.mktemp("cli-lora") / "adapter")


def close(shown, expected, path: str = "") -> None:
    """Equal JSON, numbers within 1e-5; provenance (times, ids) left out."""
    if isinstance(expected, dict):
        assert set(shown) == set(expected), path
        for key in set(expected) - {"provenance"}:
            close(shown[key], expected[key], f"{path}.{key}")
    elif isinstance(expected, list):
        assert len(shown) == len(expected), path
        for index, (a, b) in enumerate(zip(shown, expected, strict=True)):
            close(a, b, f"{path}[{index}]")
    elif isinstance(expected, float):
        assert shown == pytest.approx(expected, abs=1e-5), path
    else:
        assert shown == expected, path


def test_model_and_its_adapter_json_equals_the_library(lora):
    completed = run("compare", CHINESE, "-m", "tiny:llama", "--adapter", str(lora), "--json", "-q")
    assert completed.returncode == 0, completed.stderr.decode()
    body = json.loads(completed.stdout)
    assert body["result"] == "model_comparison" and body["same_model"] is False
    assert body["model_b"]["fingerprint"] != body["model"]["fingerprint"]
    assert body["provenance"][1]["adapter_sha256"] is not None and body["provenance"][0]["adapter_sha256"] is None
    expected = model_comparison_json(compare_two_models(tiny("llama"), with_adapter(tiny("llama"), lora), CHINESE))
    close(body, expected)
    assert [u["text"] for u in body["units"]] == ["我", "爱", "中国", "，", "他", "的", "首都", "在于"]


def test_two_models_table_and_one_layer():
    completed = run("compare", ENGLISH, "-m", "tiny:llama", "-m", "tiny:gpt2", "--layer", "1", "--method", "none")
    assert completed.returncode == 0, completed.stderr.decode()
    out = completed.stdout.decode()
    assert "common units (5): The | capital | of | France | is" in out
    assert "    1→1" in out and "    0→0" not in out and "attribution" not in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("compare", ENGLISH, "-m", "tiny:nope", "-m", "tiny:llama"), "unknown tiny family"),
        (("compare", ENGLISH, "-m", "tiny:llama", "--adapter", "/no/such/adapter"), "does not exist"),
        (("compare", ENGLISH, "-m", "a", "-m", "b", "-m", "c"), "at most 2 --model"),
        (("compare", "one", "two", "-m", "tiny:llama", "-m", "tiny:gpt2"), "on one TEXT; got 2 texts"),
        (("compare", ENGLISH, "-m", "tiny:llama", "-m", "tiny:gpt2", "--head", "0"), "heads as their mean"),
        (("compare", ENGLISH, "-m", "tiny:llama", "-m", "tiny:gpt2", "--granularity", "token"), "no token units"),
        (("compare", ENGLISH, "-m", "tiny:llama", "-m", "tiny:gpt2", "--method", "parts"), "cannot score tokens"),
        (("compare", ENGLISH, "-m", "tiny:llama", "-m", "tiny:gpt2", "--layer", "9"), "out of range"),
        (("compare", ENGLISH, "-m", "tiny:llama", "-m", "tiny:gpt2", "--layer", "1,-2"), "names a layer twice"),
        (("compare", ENGLISH, "-m", "tiny:llama", "-m", "tiny:bert"), "model B (tiny:bert) is a masked model"),
        (("compare", ENGLISH, "-m", "tiny:llama", "-m", "tiny:gpt2", "--file", "x.txt"), "as TEXT or as --file"),
        (("compare", "-m", "tiny:llama", "-m", "tiny:gpt2"), "give the text as TEXT or as --file PATH"),
        (("compare", "-m", "tiny:llama", "--file", "/no/such.txt", "-m", "tiny:gpt2"), "cannot read --file"),
        (("compare", "one", "two", "-m", "tiny:llama", "--file", "x.txt"), "--file gives the one text"),
    ],
)
def test_bad_inputs_exit_2_with_one_line(args, message):
    completed = run(*args, "-q")
    assert completed.returncode == 2, completed.stderr.decode()
    error = completed.stderr.decode().strip()
    assert message in error and "\n" not in error and "Traceback" not in error


def test_pickle_only_adapter_is_refused(lora, tmp_path):
    (tmp_path / "adapter_config.json").write_bytes((lora / "adapter_config.json").read_bytes())
    (tmp_path / "adapter_model.bin").write_bytes(b"never unpickled")
    completed = run("compare", ENGLISH, "-m", "tiny:llama", "--adapter", str(tmp_path), "-q")
    assert completed.returncode == 2 and b"only a pickle adapter_model.bin" in completed.stderr


def test_same_model_twice_is_allowed():
    completed = run("compare", ENGLISH, "-m", "tiny:llama", "-m", "tiny:llama", "--method", "none", "--json", "-q")
    body = json.loads(completed.stdout)
    assert body["same_model"] is True and body["difference"]["max_abs"] == 0.0


def test_two_texts_compared_on_whole_word_maps():
    """``difference.units``: every query row of both maps on the words the texts share, against
    eager attention of the same tiny model aggregated by hand (keys summed, queries averaged)."""
    texts = ("the cat sat", "the dog sat")
    completed = run("compare", *texts, "-m", "tiny:llama", "--layer", "2", "--json", "-q")
    assert completed.returncode == 0, completed.stderr.decode()
    body = json.loads(completed.stdout)
    assert {"pairs", "tokens", "difference", "max_abs", "only_a", "only_b"} <= set(body["difference"])
    units = body["difference"]["units"]
    assert [u["text"] for u in units["units"]] == ["<bos>", "the", "sat"]
    assert units["only_a"] == ["cat"] and units["only_b"] == ["dog"]
    model, tokenizer, _ = build_tiny("llama", attn_implementation="eager")
    maps = []
    for text, side in zip(texts, ("a", "b"), strict=True):
        encoded = tokenizer(text, return_offsets_mapping=True, return_tensors="pt")
        with torch.no_grad():
            attention = model(input_ids=encoded["input_ids"], output_attentions=True).attentions[2][0].mean(0)
        offsets = encoded["offset_mapping"][0].tolist()
        owner: list[int | None] = [0]  # <bos> is matched unit 0; then the unit of each token's first
        for s, e in offsets[1:]:  # visible character (a whitespace-only token joins the token before it)
            visible = [c for c in range(s, e) if not text[c].isspace()]
            spans = [u[side] for u in units["units"]]
            owner.append(next((k for k, (a, b) in enumerate(spans) if a is not None and a <= visible[0] < b), None)
                         if visible else owner[-1])  # fmt: skip
        groups = [[i for i, o in enumerate(owner) if o == k] for k in range(len(units["units"]))]
        expected = np.array([[attention[q][keys].sum().item() for keys in groups] for q in range(len(offsets))])
        maps.append(np.array([expected[rows].mean(axis=0) for rows in groups]))
        np.testing.assert_allclose(units[f"map_{side}"], maps[-1], atol=1e-5)
    np.testing.assert_allclose(units["difference"], maps[0] - maps[1], atol=2e-5)


def test_file_gives_the_one_text_of_a_model_comparison(tmp_path):
    """``--file PATH`` reads the text as the other one-text commands do (UTF-8, kept as written)."""
    path = tmp_path / "text.txt"
    path.write_text(CHINESE, encoding="utf-8")
    common = ("-m", "tiny:llama", "-m", "tiny:gpt2", "--method", "none", "--layer", "-1", "--json", "-q")
    from_file = run("compare", "--file", str(path), *common)
    assert from_file.returncode == 0, from_file.stderr.decode()
    body = json.loads(from_file.stdout)
    assert body["text"] == CHINESE
    close(
        body,
        model_comparison_json(compare_two_models(tiny("llama"), tiny("gpt2"), CHINESE, layers=[-1], method="none")),
    )


def test_maps_beyond_the_cell_limit_suggest_layer(capsys, monkeypatch):
    """In process, with the 4,000,000-cell limit lowered (the tiny models read 256 tokens at most)."""
    from attnscope.analysis import model_compare
    from attnscope.cli.main import main

    monkeypatch.setattr(model_compare, "MAX_MAP_CELLS", 60)  # ENGLISH: 5 words, 25 cells a layer
    assert main(["compare", ENGLISH, "-m", "tiny:llama", "-m", "tiny:gpt2", "--method", "none", "-q"]) == 2
    error = capsys.readouterr().err.strip()
    assert "3 layers of 5 × 5 units are 75 map cells (at most 60); choose at most 2 layers with --layer" in error
    assert "\n" not in error
    assert main(["compare", ENGLISH, "-m", "tiny:llama", "-m", "tiny:gpt2", "--method", "none", "--layer", "0-1"]) == 0
