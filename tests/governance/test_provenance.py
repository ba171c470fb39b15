"""The provenance record: real records of the CLI and the API validated against the shipped JSON Schema,
their output hashes and weight-file hashes recomputed here with hashlib, and ``attnscope provenance``
on a stored run, a JSON result, a signed report's envelope and a trace file (and refusing what is none)."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import jsonschema
import pytest
from fastapi.testclient import TestClient

from attnscope.capture.engine import capture
from attnscope.capture.trace import Trace
from attnscope.cli import main
from attnscope.governance import provenance
from attnscope.models.catalog import require_entry
from attnscope.models.provenance import FIELDS
from attnscope.models.verify import inspect
from attnscope.render.json import analysis_json
from attnscope.server.app import create_app
from attnscope.server.host import ModelHost
from attnscope.store.runs import RunsStore
from tests.conftest import ENGLISH, packaged, tiny
from tests.server.conftest import loader

README = Path(__file__).resolve().parents[2] / "README.md"
HEX64 = 64


def canonical_sha256(value) -> str:
    """The README's recipe, written out: SHA-256 of the value's canonical JSON in UTF-8."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = provenance.schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def valid(validator, record: dict) -> dict:
    errors = sorted(validator.iter_errors(record), key=lambda e: list(e.path))
    assert not errors, [f"{list(e.path)}: {e.message}" for e in errors]
    return record


def cli_json(capsys, *argv: str) -> dict:
    assert main([*argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def cli_fails(capsys, *argv: str) -> str:
    assert main(list(argv)) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), captured.err
    return lines[0]


# ---- the schema ------------------------------------------------------------------------------------------
def test_the_schema_documents_every_field_of_the_records(validator):
    schema = provenance.schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    properties = schema["properties"]
    assert list(properties) == list(FIELDS) and len(FIELDS) >= 40
    assert schema["required"] == list(FIELDS) and schema["additionalProperties"] is False
    assert properties["provenance_version"]["const"] == provenance.PROVENANCE_VERSION == 1
    for name, spec in properties.items():
        assert len(spec["description"]) > 20 and spec["x-group"], name
    # fields that do not apply are null, and the schema says which may be
    nullable = [name for name, spec in properties.items() if "null" in json.dumps(spec.get("type", spec))]
    assert len(nullable) >= 40


def test_the_readme_lists_the_fields_as_the_schema_says():
    assert provenance.fields_markdown() in README.read_text(encoding="utf-8")


# ---- records of real results -------------------------------------------------------------------------------
def test_an_analysis_record_is_complete_and_its_output_hashes_recompute(capsys, validator):
    answer = cli_json(capsys, "analyze", ENGLISH, "-m", "tiny:gpt2", "--head", "1", "-q")
    record = valid(validator, answer["provenance"])
    assert record["provenance_version"] == 1 and record["result_kind"] == "analysis"
    assert record["text_sha256"] == hashlib.sha256(ENGLISH.encode("utf-8")).hexdigest()
    assert record["text_chars"] == len(ENGLISH) and record["text_tokens"] == len(answer["tokens"])
    assert record["tokenizer_options"] == {
        "add_special_tokens": True,
        "truncation": False,
        "chat_template": False,
        "add_generation_prompt": None,
    }
    assert record["model_spec"] == "tiny:gpt2" and record["weights_sha256"] == answer["model"]["weights_sha256"]
    assert record["weight_files"] is None  # built in memory: no files
    assert record["method"] is None and record["generation"] is None and record["seed"] is None
    assert record["dp_epsilon"] is None and record["signing_key_fingerprint"] is None and record["run_id"] is None
    assert record["started_at"] <= record["captured_at"] <= record["finished_at"]
    assert record["started_at"].endswith("Z") and record["num_threads"] >= 1
    assert record["output_hashes"] == {
        "tokens": canonical_sha256(answer["tokens"]),
        "attention.weights": canonical_sha256(answer["attention"]["weights"]),
        "prediction.top": canonical_sha256(answer["prediction"]["top"]),
    }


def test_an_integrated_gradients_record_names_its_baseline_steps_and_delta(capsys, validator):
    answer = cli_json(capsys, "attribute", ENGLISH, "--method", "integrated-gradients", "-m", "tiny:llama", "-q")
    record = valid(validator, answer["provenance"])
    details = answer["details"]
    assert record["method"] == "integrated-gradients" and record["method_options"] == answer["options"]
    assert record["baseline"] == details["baseline"] and record["steps"] == details["steps"]
    assert record["completeness_delta"] == pytest.approx(details["delta"])
    assert record["target"]["text"] == answer["target"]["text"] and record["target"]["ids"] == answer["target"]["ids"]
    assert record["backend"] is None and record["captured_at"] is None  # gradients read no capture
    assert record["output_hashes"] == {
        "units": canonical_sha256(answer["units"]),
        "scores": canonical_sha256(answer["scores"]),
        "token_scores": canonical_sha256(answer["token_scores"]),
    }


def test_an_attention_attribution_keeps_its_capture_and_no_gradient_fields(capsys, validator):
    answer = cli_json(capsys, "attribute", ENGLISH, "--method", "attention", "-m", "tiny:llama", "-q")
    record = valid(validator, answer["provenance"])
    assert record["method"] == "attention" and record["backend"] in ("full", "qk") and record["captured_at"]
    assert record["baseline"] is None and record["steps"] is None and record["completeness_delta"] is None


def test_a_sampled_generation_records_its_seed_settings_and_stop(capsys, validator):
    argv = ("generate", ENGLISH, "-m", "tiny:llama", "--max-new-tokens", "4", "--sample", "--seed", "7", "-q")
    answer = cli_json(capsys, *argv)
    record = valid(validator, answer["provenance"])
    assert record["seed"] == 7 and record["generation"] == answer["settings"]
    assert record["generation"]["do_sample"] is True and record["stop_reason"] == answer["stop_reason"]
    full_text = answer["prompt"]["text"] + answer["generated"]["text"]
    assert record["text_sha256"] == hashlib.sha256(full_text.encode("utf-8")).hexdigest()
    assert record["backend"] == "qk" and record["stash_policy"] == record["stash"]["policy"]
    steps = answer["steps"]
    assert record["output_hashes"] == {
        "generated.tokens": canonical_sha256(answer["generated"]["tokens"]),
        "steps[].token.id": canonical_sha256([step["token"]["id"] for step in steps]),
        "steps[].top": canonical_sha256([step["top"] for step in steps]),
        "steps[].attention.weights": canonical_sha256([step["attention"]["weights"] for step in steps]),
    }
    greedy = cli_json(capsys, "generate", ENGLISH, "-m", "tiny:llama", "--max-new-tokens", "2", "-q")
    assert valid(validator, greedy["provenance"])["seed"] is None  # nothing was sampled


def test_api_answers_carry_the_full_record(validator):
    host = ModelHost(loader=loader)
    host.load("tiny:qwen2")
    client = TestClient(create_app(host), raise_server_exceptions=False)
    requests = {
        "/api/analyze": {"text": ENGLISH, "head": 0},
        "/api/attribute": {"text": ENGLISH, "method": "occlusion", "granularity": "word"},
        "/api/generate": {"text": ENGLISH, "max_new_tokens": 3},
        "/api/heads": {"text": ENGLISH},
    }
    for path, body in requests.items():
        response = client.post(path, json=body)
        assert response.status_code == 200, response.text
        answer = response.json()
        record = valid(validator, answer["provenance"])
        assert record["result_kind"] == answer["result"] and record["model_spec"] == "tiny:qwen2"
        assert record["output_hashes"] == provenance.output_hashes(answer), path
        assert all(value is None or len(value) == HEX64 for value in record["output_hashes"].values())
    heads = client.post("/api/heads", json={"text": ENGLISH}).json()["provenance"]
    assert heads["method"] == "head-metrics" and heads["method_options"]["threshold"] == 0.01


def test_sealing_is_deterministic_and_each_answer_gets_its_own_id(validator):
    trace = capture(tiny("gpt2"), ENGLISH)
    first, again = analysis_json(trace, head=0), analysis_json(trace, head=0)
    other = analysis_json(trace, head=1)
    assert first["provenance"] == again["provenance"]  # the same answer built twice: the same record
    assert other["provenance"]["record_id"] != first["provenance"]["record_id"] != trace.provenance["record_id"]
    record = valid(validator, first["provenance"])
    for changed in (
        provenance.with_run_id(record, "0123456789abcdef"),
        provenance.with_masking(record, "mask", 2),
        provenance.with_signing_key(record, "ab" * 32),
    ):
        valid(validator, changed)
    assert provenance.with_masking(record, "mask", 2)["masked_spans"] == 2
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**record, "unknown_field": 1}, provenance.schema())


def test_a_packaged_models_weight_files_and_config_hash_recompute(validator):
    model = packaged("smollm2-135m")
    files = model.provenance["weight_files"]
    found = inspect(require_entry("smollm2-135m"))
    paths = require_entry("smollm2-135m").weight_files(list(found.paths))
    assert [f["name"] for f in files] == [p.name for p in paths] and len(files) >= 1
    for entry, path in zip(files, paths, strict=True):
        assert entry["sha256"] == file_sha256(path) and entry["bytes"] == path.stat().st_size
    assert model.provenance["weights_sha256"] == require_entry("smollm2-135m").sha256
    config = {
        key: value
        for key, value in model.model.config.to_dict().items()
        if key not in ("_name_or_path", "transformers_version", "dtype", "torch_dtype")
    }
    config_text = json.dumps(config, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    assert model.provenance["config_sha256"] == hashlib.sha256(config_text.encode("utf-8")).hexdigest()
    template = model.tokenizer.chat_template
    expected = hashlib.sha256(template.encode("utf-8")).hexdigest() if template else None
    assert model.provenance["chat_template_sha256"] == expected
    record = valid(validator, capture(model, "The cat sat").provenance)
    assert record["weight_files"] == files and record["trust_remote_code"] is False


# ---- attnscope provenance -----------------------------------------------------------------------------------
@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "home"
    monkeypatch.setenv("ATTNSCOPE_HOME", str(folder))
    return folder


def test_provenance_of_a_stored_run_and_of_a_json_result(capsys, home, tmp_path, validator):
    answer = cli_json(capsys, "analyze", ENGLISH, "-m", "tiny:gpt2", "--store", "-q")
    run_id = answer["run_id"]
    shown = cli_json(capsys, "provenance", run_id)
    assert shown["result"] == "provenance" and run_id in shown["source"]
    (record,) = shown["records"]
    assert valid(validator, record)["run_id"] == run_id  # the store's id, filled in for the reader
    with RunsStore() as store:
        stored = store.result(store.get(run_id))["provenance"]
    assert record == stored  # the record as the store gives it (masked on the way in, its run id filled in)
    assert record["output_hashes"] == answer["provenance"]["output_hashes"]
    assert main(["provenance", run_id]) == 0
    table = capsys.readouterr().out
    for group in ("run", "software", "machine", "model", "input", "method", "capture", "outputs", "privacy"):
        assert f"\n{group}\n" in table
    assert any(line.split() == ["run_id", run_id] for line in table.splitlines())
    assert any(line.split()[:1] == ["attention.weights"] for line in table.splitlines())

    path = tmp_path / "analysis.json"
    path.write_text(json.dumps(answer, ensure_ascii=False), encoding="utf-8")
    from_file = cli_json(capsys, "provenance", str(path))
    assert from_file["records"] == [provenance.with_run_id(answer["provenance"], run_id)]  # the answer names its run


def test_provenance_of_a_signed_report_envelope(capsys, home, tmp_path, validator):
    keys = tmp_path / "keys"
    assert main(["keys", "generate", "--out", str(keys)]) == 0
    capsys.readouterr()
    out = tmp_path / "R.html"
    argv = ["report", ENGLISH, "--out", str(out), "--sign", "--key", str(keys / "attnscope-signing.key")]
    assert main([*argv, "--model", "tiny:gpt2", "--methods", "attention", "-q"]) == 0
    capsys.readouterr()
    envelope = json.loads((tmp_path / "R.intoto.json").read_text(encoding="utf-8"))
    keyid = envelope["signatures"][0]["keyid"]
    predicate = json.loads(base64.b64decode(envelope["payload"]))["predicate"]
    report = json.loads((tmp_path / "R.json").read_text(encoding="utf-8"))
    assert predicate == report["provenance"] and valid(validator, predicate)["result_kind"] == "report"

    (record,) = cli_json(capsys, "provenance", str(tmp_path / "R.intoto.json"))["records"]
    assert valid(validator, record)["signing_key_fingerprint"] == keyid
    assert record == predicate and predicate["signing_key_fingerprint"] == keyid  # the signed record names its key
    (from_json,) = cli_json(capsys, "provenance", str(tmp_path / "R.json"))["records"]
    assert from_json == predicate
    assert from_json["output_hashes"]["methods.attention.scores"] == canonical_sha256(
        report["methods"]["attention"]["scores"]
    )


def test_provenance_of_a_trace_file_reads_its_metadata(capsys, home, tmp_path, validator):
    path = tmp_path / "trace.safetensors"
    cli_json(capsys, "analyze", ENGLISH, "-m", "tiny:llama", "--backend", "qk", "--save", str(path), "-q")
    shown = cli_json(capsys, "provenance", str(path))
    (record,) = shown["records"]
    assert "trace file" in shown["source"]
    assert valid(validator, record) == Trace.load(path).provenance
    assert record["backend"] == "qk" and record["stash"]["policy"] == record["stash_policy"]


def test_provenance_refuses_what_holds_no_record_in_one_line(capsys, home, tmp_path):
    assert "no such file" in cli_fails(capsys, "provenance", str(tmp_path / "missing.json"))
    foreign = tmp_path / "foreign.json"
    foreign.write_text(json.dumps({"hello": "world", "provenance": "none"}), encoding="utf-8")
    assert "holds no attnscope provenance record" in cli_fails(capsys, "provenance", str(foreign))
    text = tmp_path / "notes.txt"
    text.write_text("not json at all\n", encoding="utf-8")
    assert "neither JSON nor a trace file" in cli_fails(capsys, "provenance", str(text))
    assert "no stored run 0123456789abcdef" in cli_fails(capsys, "provenance", "0123456789abcdef")
    assert "is a folder" in cli_fails(capsys, "provenance", str(tmp_path))
    fake = tmp_path / "fake.safetensors"
    header = json.dumps({"__metadata__": {"other": "{}"}}).encode()
    fake.write_bytes(len(header).to_bytes(8, "little") + header)
    assert "not an attnscope trace" in cli_fails(capsys, "provenance", str(fake))
