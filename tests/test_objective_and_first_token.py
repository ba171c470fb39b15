"""The loss objective through the catalogue, the API, the report and the CLI, against gradients written
here with plain torch; the row without its first key (attention sink) against a renormalisation by hand."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from attnscope.analysis.stats import display_rows
from attnscope.capture.tokens import tokenize
from attnscope.cli.main import main
from attnscope.methods import catalogue
from attnscope.methods.agreement import compare_methods
from attnscope.methods.run import attribute
from tests.conftest import CHINESE, ENGLISH, tiny

TEXT = f"{ENGLISH} Paris. {CHINESE}"


def loss_grad_x_input(model, text: str) -> np.ndarray:
    """(tokens,) gradient · embedding of the mean log-probability of every token given the ones before
    it, by hand: plain transformers forward on inputs_embeds, torch.autograd."""
    hf = model.model
    ids = torch.tensor([[t.id for t in tokenize(model.tokenizer, text)]])
    embeds = hf.get_input_embeddings()(ids).detach().float().requires_grad_(True)
    logits = hf(inputs_embeds=embeds).logits[0].double()  # (tokens, vocab)
    picked = torch.log_softmax(logits[:-1], dim=-1)[torch.arange(ids.shape[1] - 1), ids[0, 1:]]
    (gradient,) = torch.autograd.grad(picked.mean(), embeds)
    return (gradient[0].double() * embeds[0].detach().double()).sum(dim=-1).numpy()


def test_the_catalogue_says_which_methods_explain_the_loss():
    assert catalogue.get("grad-x-input").objectives == ("next-token", "continuation", "loss")
    assert catalogue.get("integrated-gradients").to_json()["objectives"] == ["next-token", "continuation", "loss"]
    assert catalogue.get("occlusion").objectives == ("next-token", "continuation")
    assert catalogue.get("attention").objectives == ()


def test_loss_attribution_and_comparison_match_a_hand_gradient():
    model = tiny("llama")
    expected = loss_grad_x_input(model, TEXT)
    result = attribute(model, TEXT, "grad-x-input", objective="loss", granularity="token")
    np.testing.assert_allclose(result.token_scores, expected, rtol=1e-4, atol=1e-6)
    assert not np.allclose(attribute(model, TEXT, "grad-x-input", granularity="token").token_scores, expected)
    compared = compare_methods(
        model, TEXT, methods=["attention", "grad-x-input", "occlusion"], granularity="token", objective="loss"
    )
    np.testing.assert_allclose(compared.results["grad-x-input"].token_scores, expected, rtol=1e-4, atol=1e-6)
    assert compared.skipped == {"occlusion": "occlusion cannot explain the loss objective"}
    assert compared.target["objective"] == "loss"


def test_the_report_command_states_the_loss_in_english_and_chinese(tmp_path, capsys):
    for language, words in (("en", "Gradient scores explain the loss"), ("zh-CN", "梯度分数解释的是损失")):
        out = tmp_path / f"report-{language}.html"
        argv = ["report", TEXT, "--out", str(out), "--model", "tiny:llama", "--methods", "attention", "grad-x-input"]
        assert main([*argv, "--objective", "loss", "--language", language, "--quiet"]) == 0, capsys.readouterr().err
        assert words in out.read_text(encoding="utf-8")
        data = json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))
        assert data["target"]["objective"] == "loss"
    with pytest.raises(SystemExit) as refused:
        main(["report", TEXT, "--out", str(tmp_path / "r.html"), "--objective", "perplexity"])
    assert refused.value.code == 2 and "invalid choice: 'perplexity'" in capsys.readouterr().err


def renormalised_by_hand(row: list[float], dropped: set[int]) -> list[float]:
    kept = sum(w for i, w in enumerate(row) if i not in dropped)
    return [0.0 if i in dropped else w / kept for i, w in enumerate(row)]


def test_rows_without_the_first_key_are_renormalised_by_hand():
    row = [0.6, 0.1, 0.2, 0.1]
    special = [True, False, False, True]
    rows = display_rows(row, special)
    assert rows["without_first"].tolist() == pytest.approx(renormalised_by_hand(row, {0}))
    assert rows["without_first_and_special"].tolist() == pytest.approx(renormalised_by_hand(row, {0, 3}))
    assert rows["without_special"].tolist() == pytest.approx(renormalised_by_hand(row, {0, 3}))
    assert rows["raw"].tolist() == row
    assert display_rows([1.0], [False])["without_first"].tolist() == [0.0]  # nothing left: zeros, no error
