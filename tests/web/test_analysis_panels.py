"""The analysis panels in real Chromium: method colouring, head metrics, agreement, prompt parts."""

from __future__ import annotations

import httpx
import numpy as np
import pytest
import torch

from attnscope.render.palette import fmt
from tests.conftest import CHINESE, ENGLISH
from tests.test_real_models import reference_gguf
from tests.web.conftest import SERVED_MODEL, screenshot
from tests.web.test_browser import analyze, counter


def choose_method(page, method: str, granularity: str = "word") -> None:
    page.get_by_test_id("granularity-select").select_option(granularity)
    before = counter(page, "attributions")
    page.get_by_test_id("method-select").select_option(method)
    page.wait_for_function(f"Number(document.body.dataset.attributions || 0) > {before}", timeout=120_000)


def token_scores(page) -> list[float | None]:
    raw = page.eval_on_selector_all("[data-testid=token]", "els => els.map(e => e.dataset.score)")
    return [None if value in (None, "null") else float(value) for value in raw]


def test_occlusion_recolours_the_tokens_with_hand_checked_scores(page, server):
    analyze(page, ENGLISH)
    choose_method(page, "occlusion")
    scores = token_scores(page)
    body = httpx.post(
        f"{server}/api/attribute", json={"text": ENGLISH, "method": "occlusion", "granularity": "word"}, timeout=120
    ).json()
    assert scores == pytest.approx(body["token_scores"], abs=1e-12)
    # independent: remove "France" and re-run plain transformers on the GGUF weights
    model, tokenizer = reference_gguf(SERVED_MODEL)

    def paris_logprob(prompt: str) -> float:
        ids = tokenizer(prompt + " Paris")["input_ids"]
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([ids])).logits[0].double()
        return float(torch.log_softmax(logits[-2], -1)[ids[-1]])

    france = ENGLISH.index(" France")  # removing a word removes its token, leading space included
    drop = paris_logprob(ENGLISH) - paris_logprob(ENGLISH[:france] + ENGLISH[france + len(" France") :])
    tokens = page.get_by_test_id("token")
    texts = tokens.evaluate_all("els => els.map(e => e.textContent)")
    assert scores[texts.index(" France")] == pytest.approx(drop, abs=2e-3)
    assert scores[texts.index(" France")] > scores[texts.index(" of")]
    assert "occlusion" in page.locator("#legend").inner_text()
    screenshot(page, "method-occlusion-words")


def test_integrated_gradients_show_the_completeness_delta(page, server):
    analyze(page, ENGLISH)
    choose_method(page, "integrated-gradients", "token")
    legend = page.locator("#legend").inner_text()
    assert "Completeness delta" in legend
    scores = token_scores(page)
    assert len(scores) == 5 and scores[0] == 0  # the first position is kept in the baseline
    page.get_by_test_id("method-select").select_option("")  # back to the attention row of the layer and head
    page.wait_for_function("!document.querySelector('[data-testid=token]').dataset.score")


def test_head_metric_grid_and_labels(page, server):
    analyze(page, CHINESE)
    page.get_by_role("tab", name="Head metrics").click()
    page.wait_for_selector("[data-testid=metric-canvas]", timeout=120_000)
    options = page.get_by_test_id("metric-select").evaluate("s => [...s.options].map(o => o.value)")
    assert {"entropy", "sparsity", "locality", "sink", "previous_token", "focus_consistency", "induction"} <= set(
        options
    )
    labels = page.locator("[data-testid=head-labels] span")
    assert labels.count() == 30 * 9
    api = httpx.post(f"{server}/api/heads", json={"text": CHINESE}, timeout=120).json()
    shown = labels.evaluate_all("els => els.map(e => e.dataset.label)")
    assert shown == [label for row in api["labels"] for label in row]
    canvas = page.get_by_test_id("metric-canvas")
    pixels = canvas.evaluate(
        "c => { const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
        " const s = new Set(); for (let i = 0; i < d.length; i += 4) s.add(d[i] * 65536 + d[i+1] * 256 + d[i+2]);"
        " return s.size; }"
    )
    assert pixels > 20  # a real heatmap, not a blank canvas
    box = canvas.bounding_box()
    page.mouse.move(box["x"] + 14 * 3 + 5, box["y"] + 14 * 2 + 5)  # layer 2, head 3
    readout = page.get_by_test_id("metric-readout")
    expected = api["metrics"]["entropy"][2][3]
    assert readout.inner_text() == f"layer 2, head 3: entropy = {fmt(expected)} · label {api['labels'][2][3]}"
    assert float(readout.get_attribute("data-value")) == pytest.approx(expected, abs=1e-12)
    page.get_by_test_id("metric-select").select_option("induction")
    page.wait_for_selector("[data-testid=metric-canvas][data-metric=induction]")
    screenshot(page, "head-metrics")


def test_agreement_table_lists_every_method(page, server):
    analyze(page, ENGLISH)
    page.get_by_role("tab", name="Agreement").click()
    page.get_by_test_id("granularity-select").select_option("word")
    before = counter(page, "agreements")
    page.get_by_test_id("agreement-run").click()
    page.wait_for_function(f"Number(document.body.dataset.agreements || 0) > {before}", timeout=180_000)
    table = page.get_by_test_id("agreement-table")
    methods = table.get_attribute("data-methods").split(",")
    assert methods == ["attention", "rollout", "flow", "grad-norm", "grad-x-input", "integrated-gradients", "occlusion"]
    rows = table.locator("tbody tr")
    assert rows.count() == 7
    diagonal = [rows.nth(i).locator("td").nth(i + 1).inner_text() for i in range(7)]
    assert all(value in ("1.00", "—") for value in diagonal)
    api = httpx.post(f"{server}/api/agreement", json={"text": ENGLISH, "granularity": "word"}, timeout=300).json()
    att, occ = methods.index("attention"), methods.index("occlusion")
    expected = api["agreement"]["spearman"][att][occ]
    cell = rows.nth(att).locator("td").nth(occ + 1)
    assert cell.inner_text() == fmt(expected)
    assert float(cell.locator("span").get_attribute("data-value")) == pytest.approx(expected, abs=1e-12)
    screenshot(page, "agreement")


def test_prompt_parts_panel(page, server):
    text = "Context: Paris is in France.\nQuestion: what is the capital of France?"
    analyze(page, text)
    page.get_by_role("tab", name="Prompt parts").click()
    suggested = page.get_by_test_id("parts-input").input_value()
    assert suggested.splitlines() == [
        "part1: Context: Paris is in France.",
        "part2: Question: what is the capital of France?",
    ]
    page.get_by_test_id("parts-input").fill("context: Paris is in France.\nquestion: what is the capital of France?")
    before = counter(page, "partRuns")
    page.get_by_test_id("parts-run").click()
    page.wait_for_function(f"Number(document.body.dataset.partRuns || 0) > {before}", timeout=120_000)
    table = page.get_by_test_id("parts-table")
    assert table.get_attribute("data-parts") == "context|question|(other)"
    rows = table.locator("tbody tr")
    assert rows.count() == 30
    cells = rows.nth(29).locator(".mass")
    values = [float(v) for v in cells.evaluate_all("els => els.map(e => e.dataset.value)")]
    assert cells.all_inner_texts() == [fmt(v) for v in values]
    assert sum(values) == pytest.approx(1.0, abs=1e-5)
    start = text.index("Paris")
    api = httpx.post(
        f"{server}/api/parts",
        json={
            "text": text,
            "parts": [
                {"name": "context", "start": start, "end": start + 19},
                {"name": "question", "start": text.index("what"), "end": len(text)},
            ],
        },
        timeout=120,
    ).json()
    np.testing.assert_allclose(values, api["mean_over_heads"][29], atol=1e-6)
    page.get_by_test_id("parts-input").fill("context: not in the prompt")
    page.get_by_test_id("parts-run").click()
    assert "not in the prompt" in page.get_by_test_id("error").inner_text()
    screenshot(page, "prompt-parts")
