"""The web app in real headless Chromium against a real server: what the page shows equals the API
and an independent ``transformers`` computation."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch

from attnscope.render.palette import fmt
from tests.conftest import CHINESE, ENGLISH, packaged
from tests.test_real_models import reference_gguf
from tests.web.conftest import SERVED_MODEL, screenshot


def counter(page, name: str) -> int:
    return int(page.evaluate(f"Number(document.body.dataset.{name} || 0)"))


def analyze(page, text: str) -> None:
    before = counter(page, "analyses")
    page.get_by_test_id("prompt-input").fill(text)
    page.get_by_test_id("prompt-input").press("Control+Enter")
    page.wait_for_function(f"Number(document.body.dataset.analyses || 0) > {before}")


def wait_after(page, action) -> None:
    before = counter(page, "renders")
    action()
    page.wait_for_function(f"Number(document.body.dataset.renders || 0) > {before}")


def shown_weights(page) -> list[float]:
    return [float(w) for w in page.eval_on_selector_all("[data-testid=token]", "els => els.map(e => e.dataset.weight)")]


def switch_model(page, spec: str, timeout_ms: int = 300_000) -> None:
    """Pick a model in the page's model picker and wait for the re-analysis it triggers."""
    before = counter(page, "analyses")
    page.get_by_test_id("model-select").select_option(spec)
    page.wait_for_function(f"Number(document.body.dataset.analyses || 0) > {before}", timeout=timeout_ms)


def api(server, **payload) -> dict:
    return httpx.post(f"{server}/api/analyze", json=payload, timeout=120).json()


def test_english_example_matches_api_and_transformers(page, server):
    analyze(page, ENGLISH)
    weights = shown_weights(page)
    expected = api(server, text=ENGLISH)
    np.testing.assert_allclose(weights, expected["attention"]["weights"], rtol=0, atol=1e-12)
    # independent: plain transformers, eager, output_attentions=True, last layer, mean of heads, last row
    model, tokenizer = reference_gguf(SERVED_MODEL)
    ids = tokenizer(ENGLISH, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        out = model(input_ids=ids, output_attentions=True)
    reference = out.attentions[-1][0].mean(dim=0)[-1].numpy()
    np.testing.assert_allclose(weights, reference, atol=1e-4)
    prediction = page.get_by_test_id("prediction")
    assert prediction.get_attribute("data-token") == " Paris"
    probs = torch.softmax(out.logits[0, -1].double(), dim=-1)
    assert abs(float(prediction.get_attribute("data-prob")) - float(probs.max())) < 1e-4
    prediction.hover()
    candidates = page.get_by_test_id("candidate")
    assert candidates.count() == 10
    shown = [float(p) for p in candidates.evaluate_all("els => els.map(e => e.dataset.prob)")]
    np.testing.assert_allclose(shown, [c["prob"] for c in expected["prediction"]["top"]], atol=1e-12)
    assert shown == sorted(shown, reverse=True)
    screenshot(page, "english-token-view")


def test_chinese_example_displays_exactly(page, server):
    analyze(page, CHINESE)
    tokens = page.get_by_test_id("token")
    texts = tokens.evaluate_all("els => els.map(e => e.textContent)")
    expected = api(server, text=CHINESE)
    assert len(texts) == len(expected["tokens"])
    assert "".join(t["text"] for t in expected["tokens"]) == CHINESE
    assert page.get_by_test_id("token-strip").evaluate("e => e.textContent").startswith(CHINESE[:2])
    np.testing.assert_allclose(shown_weights(page), expected["attention"]["weights"], atol=1e-12)
    assert page.get_by_test_id("prediction").get_attribute("data-token")
    screenshot(page, "chinese-token-view")


def test_layer_head_and_query_changes_show_the_right_weights(page, server):
    analyze(page, ENGLISH)
    wait_after(page, lambda: page.get_by_test_id("layer-select").select_option("3"))
    wait_after(page, lambda: page.get_by_test_id("head-select").select_option("2"))
    np.testing.assert_allclose(
        shown_weights(page), api(server, text=ENGLISH, layer=3, head=2)["attention"]["weights"], atol=1e-12
    )
    wait_after(page, lambda: page.get_by_test_id("token").nth(1).click())
    assert "query" in page.get_by_test_id("token").nth(1).get_attribute("class")
    expected = api(server, text=ENGLISH, layer=3, head=2, query=1)["attention"]["weights"]
    np.testing.assert_allclose(shown_weights(page), expected, atol=1e-12)
    assert shown_weights(page)[2:] == [0.0] * (len(expected) - 2)  # causal: nothing after the query


def test_heatmap_grid_and_head_view_draw(page, server):
    analyze(page, ENGLISH)
    wait_after(page, lambda: page.get_by_role("tab", name="Heatmap").click())
    size = page.get_by_test_id("heatmap").evaluate("c => [c.width, c.height]")
    assert size == [5, 5]
    pixels = page.get_by_test_id("heatmap").evaluate(
        "c => Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data)"
    )
    reds = np.array(pixels).reshape(-1, 4)
    assert (reds[:, 1] < 250).any(), "heatmap is blank"
    screenshot(page, "heatmap")
    wait_after(page, lambda: page.get_by_role("tab", name="All heads").click())
    cells = page.get_by_test_id("grid-cell")
    assert cells.count() == 30 * 9
    screenshot(page, "head-grid")
    with page.expect_download() as download:
        page.get_by_test_id("export-png").click()
    assert download.value.suggested_filename == "attnscope-grid.png"
    assert Path(download.value.path()).stat().st_size > 2000
    before = counter(page, "analyses")
    cells.nth(9 * 4 + 5).click()  # selecting a head re-analyses with that layer and head
    page.wait_for_function(f"Number(document.body.dataset.analyses || 0) > {before}")
    assert page.get_by_test_id("layer-select").input_value() == "4"
    assert page.get_by_test_id("head-select").input_value() == "5"
    wait_after(page, lambda: page.get_by_role("tab", name="Head view").click())
    assert page.get_by_test_id("head-view").evaluate("c => c.width") > 0
    info = page.get_by_test_id("model-info").inner_text()
    assert "SmolLM2" in info and "30" in info and "49152" in info


def test_bad_input_shows_an_error_and_the_page_keeps_working(page, server):
    analyze(page, "")
    error = page.get_by_test_id("error")
    assert error.is_visible() and "text is empty" in error.inner_text()
    analyze(page, ENGLISH)
    assert not error.is_visible()
    assert page.get_by_test_id("prediction").get_attribute("data-token") == " Paris"


def test_exports_download_the_analysis_and_a_png(page, server):
    analyze(page, ENGLISH)
    with page.expect_download() as download:
        page.get_by_test_id("export-json").click()
    exported = json.loads(Path(download.value.path()).read_text(encoding="utf-8"))
    assert exported["text"] == ENGLISH and exported["prediction"]["top"][0]["token"] == " Paris"
    with page.expect_download() as download:
        page.get_by_test_id("export-png").click()
    assert Path(download.value.path()).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_encoder_model_from_the_model_picker(page, server):
    packaged("minilm-l6")
    switch_model(page, "minilm-l6")
    try:
        analyze(page, "The capital of France is Paris.")
        tokens = page.get_by_test_id("token")
        classes = tokens.evaluate_all("els => els.map(e => e.className)")
        assert "special" in classes[0] and "special" in classes[-1]  # [CLS] ... [SEP]
        assert page.get_by_test_id("prediction").count() == 0  # an encoder has no next-token head
        raw = shown_weights(page)
        np.testing.assert_allclose(
            raw, api(server, text="The capital of France is Paris.")["attention"]["weights"], atol=1e-12
        )
        wait_after(page, lambda: page.get_by_test_id("exclude-special").check())
        stats = api(server, text="The capital of France is Paris.")["stats"]["without_special"]
        panel = page.get_by_test_id("weight-stats")
        assert panel.locator("table").get_attribute("data-basis") == "without_special"
        entropy = panel.get_by_test_id("entropy")
        assert float(entropy.get_attribute("data-value")) == pytest.approx(stats["entropy_nats"], abs=1e-12)
        assert entropy.inner_text().startswith(f"{fmt(stats['entropy_nats'])} nats")
        renormalised = shown_weights(page)
        assert renormalised[0] == 0 and renormalised[-1] == 0
        assert abs(sum(renormalised) - 1) < 1e-9
        np.testing.assert_allclose(renormalised[1:-1], np.array(raw[1:-1]) / sum(raw[1:-1]), atol=1e-12)
        wait_after(page, lambda: page.get_by_test_id("hide-special").check())
        assert not tokens.first.is_visible()
        screenshot(page, "encoder-token-view")
    finally:
        switch_model(page, SERVED_MODEL)


@pytest.mark.slow
def test_chinese_example_on_the_default_model_predicts_beijing(page, server):
    packaged("qwen2.5-coder-0.5b")
    switch_model(page, "qwen2.5-coder-0.5b")
    try:
        analyze(page, CHINESE)
        texts = page.get_by_test_id("token").evaluate_all("els => els.map(e => e.textContent)")
        assert "".join(texts) == CHINESE  # Qwen keeps every character whole here
        prediction = page.get_by_test_id("prediction")
        assert prediction.get_attribute("data-token") == "北京"
        assert 0.4 < float(prediction.get_attribute("data-prob")) < 0.7
        prediction.hover()
        assert page.get_by_test_id("candidate").count() == 10
        screenshot(page, "chinese-qwen-token-view")
    finally:
        switch_model(page, SERVED_MODEL)
