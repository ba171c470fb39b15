"""In real Chromium: the objective select of a gradient method (next token / continuation / loss) changes
the scores to the library's attribute(..., objective=...) for the same text; the first token excluded
from the attention row on request, the row renormalised (checked by hand) and the legend saying so."""

from __future__ import annotations

import numpy as np
import pytest

from attnscope.methods.run import attribute
from tests.conftest import CHINESE, ENGLISH, packaged
from tests.test_objective_and_first_token import renormalised_by_hand
from tests.web.conftest import SERVED_MODEL, screenshot
from tests.web.test_analysis_panels import choose_method, token_scores
from tests.web.test_browser import analyze, counter, shown_weights, wait_after


def wait_attribution(page, action) -> None:
    before = counter(page, "attributions")
    action()
    page.wait_for_function(f"Number(document.body.dataset.attributions || 0) > {before}", timeout=300_000)


def test_the_loss_objective_changes_the_scores_to_the_librarys(page, server):
    model = packaged(SERVED_MODEL)  # the served model, in this process: the library's own numbers
    analyze(page, ENGLISH)
    choose_method(page, "grad-x-input", "token")
    objective = page.get_by_test_id("objective-select")
    assert objective.evaluate("s => [...s.options].map(o => o.value)") == ["next-token", "continuation", "loss"]
    next_token = token_scores(page)
    expected = attribute(model, ENGLISH, "grad-x-input", granularity="token").token_scores
    np.testing.assert_allclose(next_token, expected, rtol=1e-3, atol=1e-5)

    wait_attribution(page, lambda: objective.select_option("loss"))
    loss = token_scores(page)
    expected = attribute(model, ENGLISH, "grad-x-input", objective="loss", granularity="token").token_scores
    np.testing.assert_allclose(loss, expected, rtol=1e-3, atol=1e-5)
    assert loss != pytest.approx(next_token, abs=1e-3)
    assert "for the loss (the mean log-probability" in page.locator("#legend").inner_text()
    screenshot(page, "objective-loss")

    # a continuation: the text box appears, and its text is explained
    objective.select_option("continuation")
    target = page.get_by_test_id("objective-target")
    assert target.is_visible()
    target.fill(" Paris, the city")
    wait_attribution(page, lambda: target.dispatch_event("change"))
    expected = attribute(model, ENGLISH, "grad-x-input", target=" Paris, the city", granularity="token").token_scores
    np.testing.assert_allclose(token_scores(page), expected, rtol=1e-3, atol=1e-5)
    assert "for the continuation" in page.locator("#legend").inner_text()

    # occlusion cannot explain the loss: its select has no such choice; the attention row has none at all
    choose_method(page, "occlusion", "token")
    assert objective.evaluate("s => [...s.options].map(o => o.value)") == ["next-token", "continuation"]
    choose_method(page, "", "token")
    assert page.get_by_test_id("objective-select").count() == 0
    assert page.get_by_test_id("error").is_hidden()


def test_the_first_token_is_excluded_and_the_row_renormalised(page, server):
    analyze(page, CHINESE)
    raw = shown_weights(page)
    wait_after(page, lambda: page.get_by_test_id("exclude-first").check())
    shown = shown_weights(page)
    np.testing.assert_allclose(shown, renormalised_by_hand(raw, {0}), rtol=0, atol=1e-12)
    legend = page.locator("#legend").inner_text()
    assert "first token excluded, renormalised" in legend
    tokens = page.get_by_test_id("token")
    assert "excluded" in tokens.nth(0).get_attribute("class") and "excluded" not in tokens.nth(1).get_attribute("class")
    stats = page.get_by_test_id("weight-stats").locator("table")
    assert stats.get_attribute("data-basis") == "without_first"
    maximum = float(page.get_by_test_id("max-weight").locator("[data-value]").first.get_attribute("data-value"))
    assert maximum == pytest.approx(max(renormalised_by_hand(raw, {0})), abs=1e-9)
    screenshot(page, "first-token-excluded")

    wait_after(page, lambda: page.get_by_test_id("exclude-special").check())
    assert "first token and special tokens excluded, renormalised" in page.locator("#legend").inner_text()
    assert stats.get_attribute("data-basis") == "without_first_and_special"

    page.get_by_test_id("language-select").select_option("zh-CN")
    page.wait_for_function("document.getElementById('legend').textContent.includes('已排除第一个词元和特殊词元')")
    page.get_by_test_id("language-select").select_option("en")
    wait_after(page, lambda: page.get_by_test_id("exclude-special").uncheck())
    wait_after(page, lambda: page.get_by_test_id("exclude-first").uncheck())
    np.testing.assert_allclose(shown_weights(page), raw, rtol=0, atol=1e-12)
    assert "first token excluded" not in page.locator("#legend").inner_text()
