"""The page's DP ε field, in Chromium: a noised analysis is labelled and differs from the exact
``POST /api/analyze`` answer; with the field cleared the page shows the exact weights again."""

from __future__ import annotations

import httpx
import numpy as np

from tests.conftest import ENGLISH
from tests.web.conftest import screenshot


def counter(page, name: str) -> int:
    return int(page.evaluate(f"Number(document.body.dataset.{name} || 0)"))


def analyze_on_page(page) -> None:
    before = counter(page, "analyses")
    page.click("[data-testid=analyze-button]")
    page.wait_for_function(f"Number(document.body.dataset.analyses || 0) > {before}", timeout=120_000)
    page.wait_for_function("document.body.dataset.busy !== '1'")


def token_weights(page) -> list[float]:
    return [float(w) for w in page.locator("[data-testid=token]").evaluate_all("n => n.map(e => e.dataset.weight)")]


def test_dp_epsilon_noises_and_labels_the_token_view(page, server):
    exact = httpx.post(f"{server}/api/analyze", json={"text": ENGLISH}, timeout=300).json()["attention"]["weights"]
    page.fill("[data-testid=prompt-input]", ENGLISH)
    page.fill("[data-testid=dp-epsilon]", "1")
    analyze_on_page(page)
    assert page.locator("[data-testid=error]").is_hidden()
    label = page.locator("[data-testid=dp-label]")
    assert label.is_visible()
    assert "noised with ε = 1, Laplace (sensitivity 2, scale 2)" in label.inner_text()
    noised = token_weights(page)
    assert len(noised) == len(exact)
    assert not np.allclose(noised, exact, atol=1e-6)
    screenshot(page, "dp-noised")
    page.click("#tab-heatmap")  # the other views read exact arrays: off while ε is set
    assert page.locator("[data-testid=dp-view-off]").is_visible()
    assert page.locator("[data-testid=heatmap]").is_hidden()
    page.click("[data-testid=generate-button]")  # generation has no DP: refused, nothing generated
    assert "differential privacy" in page.locator("[data-testid=error]").inner_text()
    page.click("#tab-tokens")

    page.fill("[data-testid=dp-epsilon]", "")
    analyze_on_page(page)
    assert page.locator("[data-testid=dp-label]").count() == 0
    assert np.allclose(token_weights(page), exact, atol=1e-6)
    page.click("#tab-heatmap")  # exact again: the heatmap is back
    page.wait_for_selector("[data-testid=heatmap]", state="visible")
    assert page.locator("[data-testid=dp-view-off]").count() == 0
