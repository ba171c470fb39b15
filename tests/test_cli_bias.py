"""``attnscope bias`` and :func:`run_bias` against independent computations: each pair's probability
gap from a plain ``transformers`` forward, each head's mass difference from eager attention summed by
hand (tiny models and the packaged SmolLM2), the JSON contract, the text table and bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from attnscope.cli.main import main
from attnscope.methods.bias import run_bias
from tests.conftest import packaged, tiny

USER_SUITE = {
    "name": "pets",
    "version": 1,
    "order": ["cat owner", "dog owner"],
    "pairs": [
        {
            "id": "walk",
            "continuation": " walk",
            "tags": ["habit"],
            "variants": [
                {"identity": "cat", "text": "My friend with a cat likes to", "terms": {"identity": "cat"}},
                {"identity": "dog", "text": "My friend with a dog likes to", "terms": {"identity": "dog"}},
            ],
        },
        {
            "template": "The vet said that the owner of the cat",
            "terms": {"animal": "cat", "person": [22, 27]},  # a character span: "owner"
            "variants": [{"identity": "cat", "continuation": " purrs"}, {"identity": "dog", "continuation": " barks"}],
        },
    ],
}


def reference(loaded, prompt: str, continuation: str):
    """(ids, prompt length, log-probability of the continuation, (layers, heads, query, key) eager
    attention, character offsets) from the model's own forward, without attnscope's code."""
    tokenizer, hf = loaded.tokenizer, loaded.model
    prompt_ids = tokenizer(prompt)["input_ids"]
    encoded = tokenizer(prompt + continuation, return_offsets_mapping=True)
    ids = list(encoded["input_ids"])
    assert ids[: len(prompt_ids)] == prompt_ids  # the probes' continuations keep the prompt's tokens
    previous = hf.config._attn_implementation
    with loaded.lock, torch.no_grad():
        hf.set_attn_implementation("eager")
        try:
            out = hf(input_ids=torch.tensor([ids]), output_attentions=True)
        finally:
            hf.set_attn_implementation(previous)
    logprobs = torch.log_softmax(out.logits[0].double(), dim=-1)
    logprob = sum(float(logprobs[p - 1, ids[p]]) for p in range(len(prompt_ids), len(ids)))
    attentions = np.stack([a[0].double().numpy() for a in out.attentions])
    return ids, len(prompt_ids), logprob, attentions, list(encoded["offset_mapping"])


def check_pair(loaded, entry: dict) -> None:
    """The pair's gap and every head's mass difference recomputed from :func:`reference`."""
    masses, logprobs = [], []
    for variant in entry["variants"]:
        ids, n_prompt, logprob, attentions, offsets = reference(loaded, variant["text"], variant["continuation"])
        assert [t["id"] for t in variant["tokens"]] == ids
        assert variant["logprob"] == pytest.approx(logprob, abs=2e-4)
        assert variant["prob"] == pytest.approx(np.exp(logprob), rel=2e-4)
        query = n_prompt - 1 if entry["heads"]["query"] == "prediction" else len(ids) - 1
        mass = {}
        for term in variant["terms"]:  # the term's tokens from the tokenizer's own offsets
            inside = [i for i, (s, e) in enumerate(offsets) if s < term["end"] and e > term["start"]]
            mass[term["role"]] = attentions[:, :, query, inside].sum(axis=-1)  # (layers, heads)
        masses.append(mass)
        logprobs.append(logprob)
    assert entry["gap"]["logprob"] == pytest.approx(logprobs[0] - logprobs[1], abs=3e-4)
    assert entry["gap"]["prob"] == pytest.approx(np.exp(logprobs[0]) - np.exp(logprobs[1]), abs=1e-5)
    for role, difference in entry["heads"]["difference"].items():
        np.testing.assert_allclose(difference, masses[0][role] - masses[1][role], atol=2e-5)
    top = entry["heads"]["top"][0]
    expected = masses[0][top["role"]] - masses[1][top["role"]]
    assert top["difference"] == pytest.approx(expected[top["layer"], top["head"]], abs=2e-5)
    assert abs(top["difference"]) == pytest.approx(np.abs(expected).max(), abs=2e-5)


def test_run_bias_matches_a_plain_forward_and_eager_attention_on_a_tiny_model():
    loaded = tiny("llama")
    result = run_bias(loaded, USER_SUITE, resamples=500, seed=3)
    assert [entry["heads"]["query"] for entry in result["pairs"]] == ["prediction", "continuation"]
    assert result["pairs"][1]["heads"]["roles"] == ["animal", "person"]
    assert [t["text"] for t in result["pairs"][1]["variants"][1]["terms"]] == ["cat", "owner"]
    for entry in result["pairs"]:
        check_pair(loaded, entry)
    summary = result["summary"]
    gaps = [entry["gap"]["logprob"] for entry in result["pairs"]]
    assert summary["gap"]["logprob"]["mean"] == pytest.approx(np.mean(gaps))
    assert min(gaps) - 1e-9 <= summary["gap"]["logprob"]["low"] <= summary["gap"]["logprob"]["high"] <= max(gaps) + 1e-9
    assert summary["prefers_first"]["mean"] == pytest.approx(np.mean([g > 0 for g in gaps]))
    assert summary["by_tag"]["habit"]["pairs"] == 1
    again = run_bias(loaded, USER_SUITE, resamples=500, seed=3)
    assert again["summary"] == summary  # the seed fixes the intervals
    last = loaded.arch.layers - 1
    some = run_bias(loaded, USER_SUITE, layers=[0, -1], resamples=100)
    for entry, full in zip(some["pairs"], result["pairs"], strict=True):
        assert entry["heads"]["layers"] == [0, last] and entry["gap"] == full["gap"]
        for role, difference in entry["heads"]["difference"].items():
            np.testing.assert_allclose(difference, np.array(full["heads"]["difference"][role])[[0, last]], atol=1e-6)
    assert some["provenance"]["layers_captured"] == [0, last]


def test_bias_json_contract_provenance_and_a_user_suite_file(tmp_path):
    import jsonschema

    from attnscope.governance.provenance import schema

    path = tmp_path / "pets.json"
    path.write_text(json.dumps(USER_SUITE), encoding="utf-8")
    command = [sys.executable, "-m", "attnscope", "bias", "--suite", str(path), "--model", "tiny:llama"]
    done = subprocess.run(
        [*command, "--json", "--quiet", "--resamples", "300", "--seed", "5"],
        capture_output=True, timeout=600, check=False, env={**os.environ, "PYTHONIOENCODING": "utf-8"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()
    out = json.loads(done.stdout.decode("utf-8"))
    assert set(out) == {"schema_version", "result", "suite", "model", "pairs", "summary", "provenance"}
    assert out["result"] == "bias" and out["suite"]["name"] == "pets" and out["model"]["spec"] == "tiny:llama"
    entry = out["pairs"][0]
    assert {"template", "variants", "gap", "heads"} <= set(entry)
    assert all({"text", "continuation", "prob", "logprob"} <= set(v) for v in entry["variants"])
    assert set(entry["gap"]) == {"prob", "logprob", "share"}
    assert out["summary"]["resamples"] == 300 and out["summary"]["seed"] == 5
    assert set(out["summary"]["gap"]["logprob"]) == {"mean", "low", "high", "n"}
    record = out["provenance"]
    jsonschema.validate(record, schema())
    assert record["method"] == "bias" and record["method_options"]["suite_sha256"] == out["suite"]["sha256"]
    check_pair(tiny("llama"), entry)


def test_bias_text_table_and_the_suite_list(capsys):
    assert main(["bias", "--suite", "gender-occupation-en", "--model", "tiny:gpt2", "--resamples", "200", "-q"]) == 0
    text = capsys.readouterr().out
    assert "The nurse said that" in text and '" she"' in text and "95% percentile bootstrap" in text
    assert "tag female-majority (16 pairs)" in text and "heads: mass to 'occupation'" in text
    assert main(["bias", "--list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert {"gender-occupation-en", "gender-occupation-zh"} <= {s["name"] for s in listed["suites"]}
    assert main(["bias", "--list"]) == 0
    assert "gender-occupation-zh" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--suite", "no-such-suite"], "unknown bias suite 'no-such-suite'; packaged suites:"),
        (["--suite", "gender-occupation-en", "--resamples", "0"], "--resamples must be between 1 and 100,000, not 0"),
        (["--suite", "gender-occupation-en", "--resamples", "-3"], "--resamples must be between 1 and 100,000"),
        (["--suite", "gender-occupation-en", "--resamples", "1000000000"], "--resamples must be between 1 and"),
        (["--suite", "gender-occupation-en", "--confidence", "1.5"], "--confidence must be between 0 and 1"),
        (["--suite", "gender-occupation-en", "--seed", "-1"], "--seed must be ≥ 0"),
        (["--list", "--model", "tiny:llama"], "--list lists the suites; --model is for --suite"),
        (["--suite", "gender-occupation-en", "--model", "tiny:bert"], "bias probes needs a causal language model"),
    ],
)
def test_bad_input_is_one_line(capsys, arguments, message):
    assert main(["bias", *arguments, "--quiet"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: ") and message in error and "\n" not in error


def test_a_malformed_suite_file_is_refused_before_a_model_loads(tmp_path, capsys):
    path = tmp_path / "broken.json"
    path.write_text(json.dumps({**USER_SUITE, "pairs": [{"template": "x", "variants": []}]}), encoding="utf-8")
    assert main(["bias", "--suite", str(path), "--model", "no-such-model", "--quiet"]) == 2
    assert "suite file broken.json: pair 1: a pair needs exactly 2 variants, not 0" in capsys.readouterr().err
    path.write_text("{not json", encoding="utf-8")
    assert main(["bias", "--suite", str(path), "--quiet"]) == 2
    assert "is not JSON (line 1, column 2" in capsys.readouterr().err


def test_smollm2_pairs_match_plain_transformers_english_and_chinese():
    from attnscope.methods.bias_suites import load_suite

    loaded = packaged("smollm2-135m")
    for name in ("gender-occupation-en", "gender-occupation-zh"):
        suite = load_suite(name)
        few = {"name": f"{name}-few", "order": list(suite.order), "pairs": []}
        for pair in (suite.pairs[0], suite.pairs[-1]):
            few["pairs"].append(
                {
                    "template": pair.template,
                    "terms": {"occupation": pair.variants[0].full_text[pair.variants[0].terms[0].start :
                                                                       pair.variants[0].terms[0].end]},
                    "variants": [{"identity": v.identity, "continuation": v.continuation} for v in pair.variants],
                }
            )  # fmt: skip
        result = run_bias(loaded, few, resamples=200)
        for entry in result["pairs"]:
            check_pair(loaded, entry)
        if name.endswith("zh"):  # 她 and 他 are two byte-level tokens each in SmolLM2's vocabulary
            assert all(v["continuation_tokens"] == 2 for e in result["pairs"] for v in e["variants"])
