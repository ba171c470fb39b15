"""``attnscope counterfactual``: the CLI contract, its one-line refusals, and a packaged real model."""

from __future__ import annotations

import json

import numpy as np
import pytest

from attnscope.cli.main import main
from attnscope.errors import InputError
from attnscope.methods.counterfactual import counterfactual
from attnscope.render.counterfactual import counterfactual_answer, counterfactual_text
from tests.analysis.test_counterfactual import eager
from tests.conftest import packaged, tiny
from tests.test_cli import run

TEXT = "The doctor said that he was late"


def test_cli_json_is_the_library_answer_and_the_text_shows_both_runs():
    result = run(
        "counterfactual", TEXT, "--replace", "he=she", "--model", "tiny:llama", "--layer", "1", "--head", "2",
        "--method", "grad-norm", "--json", "--quiet",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr.decode()
    out = json.loads(result.stdout.decode("utf-8"))
    assert out["result"] == "counterfactual" and out["schema_version"] == 1
    assert out["original"]["text"] == TEXT and out["counterfactual"]["text"] == "The doctor said that she was late"
    assert out["edits"] == [{"kind": "replace", "old": "he", "new": "she", "occurrence": "all"}]
    assert out["view"]["layer"] == 1 and out["view"]["head"] == 2
    library = counterfactual_answer(
        tiny("llama"), TEXT, [{"replace": "he", "with": "she"}], layer=1, head=2, method="grad-norm"
    )
    for key in ("alignment", "changes", "char_map", "prediction", "heads"):
        assert out[key] == library[key], key
    np.testing.assert_allclose(out["difference"]["map"], library["difference"]["map"], atol=1e-6)
    assert out["attribution"]["method"] == "grad-norm"
    assert out["attribution"]["original"] == pytest.approx(library["attribution"]["original"], abs=1e-6)
    assert [r["method"] for r in out["provenance"]] == ["counterfactual", "counterfactual"]
    assert all(r["result_kind"] == "counterfactual" for r in out["provenance"])
    text = run("counterfactual", TEXT, "--swap", "gender", "--model", "tiny:llama", "--method", "none", "--quiet")
    shown = text.stdout.decode("utf-8")
    assert text.returncode == 0, text.stderr.decode()
    assert '"The doctor said that she was late"' in shown and "heads whose query row changed most" in shown
    assert "attribution shift" not in shown


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--replace", "dog=cat"], "'dog' does not occur in the text"),
        (["--replace", "he"], "--replace needs OLD=NEW"),
        (["--replace", "=she"], "OLD is empty"),
        (["--replace", "he=he"], "changes nothing"),
        (["--delete", ""], "empty"),
        (["--insert", "after:doctor="], "the text to insert is empty"),
        (["--insert", "somewhere=x"], "before:WORD or after:WORD"),
        (["--replace", "said that=told", "--delete", "that he"], "edits overlap"),
        (["--delete", "The doctor said that he was late"], "counterfactual would be empty"),
        (["--swap", "race"], "unknown swap table 'race'"),
        (["--replace", "he=she", "--occurrence", "twice"], "occurrence must be"),
        ([], "no edit given"),
        (["--replace", "he=she", "--top-k", "0"], "--top-k"),
        (["--replace", "he=she", "--method", "nope"], "unknown method 'nope'"),
        (["--replace", "he=she", "--method", "head-metrics"], "not a token attribution method"),
    ],
)
def test_bad_edits_are_refused_in_one_line_before_a_model_loads(args, message, capsys):
    assert main(["counterfactual", TEXT, "--model", "no-such-model", *args]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: ") and message in error and error.count("\n") == 1


def test_a_method_that_is_not_an_attribution_is_refused():
    with pytest.raises(InputError, match="not a token attribution method"):
        counterfactual(tiny("llama"), TEXT, [{"replace": "he", "with": "she"}], method="head-metrics")


def test_smollm2_counterfactual_matches_two_eager_runs():
    model = packaged("smollm2-135m")
    result = counterfactual(model, "The capital of France is", [{"replace": "France", "with": "Germany"}])
    original, changed = result.traces
    assert result.alignment.pairs == [(0, 0), (1, 1), (2, 2), (4, 4)]  # " France" / " Germany" unmatched
    ids_o, att_o, probs_o = eager(model, original.text)
    ids_e, att_e, probs_e = eager(model, changed.text)
    assert original.token_ids == ids_o and changed.token_ids == ids_e
    paris, berlin = model.tokenizer.encode(" Paris"), model.tokenizer.encode(" Berlin")
    predictions = result.predictions
    assert (
        predictions["original"]["top"][0]["id"] == paris[0]
        and predictions["counterfactual"]["top"][0]["id"] == berlin[0]
    )
    assert predictions["original_top_in_counterfactual"]["prob"] == pytest.approx(probs_e[paris[0]], abs=1e-4)
    assert predictions["counterfactual_top_in_original"]["prob"] == pytest.approx(probs_o[berlin[0]], abs=1e-4)
    assert probs_e[paris[0]] < 0.05 < 0.5 < probs_o[paris[0]]
    rows = [0, 1, 2, 4]
    last = att_o.shape[0] - 1
    np.testing.assert_allclose(result.rows[0], att_o[last].mean(axis=0)[-1], atol=1e-4)
    np.testing.assert_allclose(result.rows[1], att_e[last].mean(axis=0)[-1], atol=1e-4)
    expected = att_e[last].mean(axis=0)[np.ix_(rows, rows)] - att_o[last].mean(axis=0)[np.ix_(rows, rows)]
    np.testing.assert_allclose(result.difference.difference, expected, atol=1e-4)
    before, after = att_o[:, :, -1][..., rows], att_e[:, :, -1][..., rows]
    p, q = before / before.sum(-1, keepdims=True), after / after.sum(-1, keepdims=True)
    np.testing.assert_allclose(result.heads.tvd, 0.5 * np.abs(p - q).sum(-1), atol=1e-4)
    # both texts explain " Paris": the shift says how the evidence for it moved
    assert result.attribution.target_mode == "original"
    assert [r.target["ids"] for r in result.attribution.results] == [paris, paris]
    shown = counterfactual_text(counterfactual_answer(model, "The capital of France is", [{"remove": " France"}]))
    assert '"The capital of is"' in shown and "Spearman" in shown
