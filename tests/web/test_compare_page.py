"""The Compare view in real Chromium: the served model (smollm2-135m, 30 layers) against gemma3-270m
(18 layers, another tokenizer) on both examples; the page shows the numbers POST /api/compare/models
answers (both tokenizations, predictions, the difference map's scale and labels, head metrics,
attribution and its rank agreement)."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import CHINESE, ENGLISH, packaged
from tests.web.conftest import screenshot
from tests.web.test_browser import analyze, counter

SECOND = "gemma3-270m"


def js(value) -> str:
    """A value as JavaScript's String() writes it into a data attribute."""
    return "null" if value is None else str(value)


def data(page, selector: str, *keys: str) -> list[tuple[str, ...]]:
    script = "els => els.map(e => [" + ", ".join(f"e.dataset.{key}" for key in keys) + "])"
    return [tuple(row) for row in page.locator(selector).evaluate_all(script)]


def compare(page) -> None:
    page.get_by_role("tab", name="Compare models").click()
    page.wait_for_function("document.querySelectorAll('#compare-model option').length > 1")
    page.get_by_test_id("compare-model-select").select_option(SECOND)
    page.get_by_test_id("compare-method").select_option("grad-x-input")
    before = counter(page, "comparisons")
    page.get_by_test_id("compare-run").click()
    page.wait_for_function(f"Number(document.body.dataset.comparisons || 0) > {before}", timeout=600_000)
    assert not page.get_by_test_id("error").is_visible(), page.get_by_test_id("error").inner_text()


@pytest.mark.parametrize(("text", "name"), [(ENGLISH, "compare-english"), (CHINESE, "compare-chinese")])
def test_the_page_shows_the_apis_comparison(page, server, text, name):
    packaged(SECOND)
    analyze(page, text)
    compare(page)
    response = httpx.post(
        f"{server}/api/compare/models",
        json={"text": text, "model": SECOND, "layers": [-1], "method": "grad-x-input"},
        timeout=600,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    # both tokenizations, each token with its character span and common unit, exactly as the text has them
    for index, key in ((0, "a"), (1, "b")):
        chips = data(page, f"[data-testid=compare-tokens-{key}] .token-chip", "start", "end", "unit", "text")
        tokens = body["models"][index]["tokens"]
        assert [(s, e, u) for s, e, u, _ in chips] == [(js(t["start"]), js(t["end"]), js(t["unit"])) for t in tokens]
        assert [c for s, _, _, c in chips if s != "null"] == [
            text[t["start"] : t["end"]] for t in tokens if t["start"] is not None
        ]
        top = data(page, f"[data-testid=compare-top-{key}] li", "token", "prob")
        expected = body["models"][index]["predictions"]
        assert [token for token, _ in top] == [c["token"] for c in expected]
        assert [float(p) for _, p in top] == pytest.approx([c["prob"] for c in expected], abs=1e-6)
    # the difference map: the matched layers, the scale, every word labelled on both axes, cells drawn
    canvas = page.get_by_test_id("compare-map-canvas")
    assert [int(canvas.get_attribute("data-layer-a")), int(canvas.get_attribute("data-layer-b"))] == [29, 17]
    assert body["layer_match"]["pairs"] == [[29, 17]]
    assert float(canvas.get_attribute("data-max-abs")) == pytest.approx(body["difference"]["max_abs"], abs=1e-6)
    assert int(canvas.get_attribute("data-size")) == len(body["units"])
    rows = page.locator("[data-testid=compare-map] .tick.y").all_inner_texts()
    assert [r.split(" ", 1)[1] for r in rows] == [u["text"] for u in body["units"]]
    bar = data(page, "[data-testid=compare-map] [data-testid=colour-bar] .tick", "value")
    top = body["difference"]["max_abs"]
    assert [float(v) for (v,) in bar] == pytest.approx([-top, top], abs=1e-6)  # a signed scale, symmetric
    coloured = canvas.evaluate(
        """c => { const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data; let n = 0;
          for (let k = 0; k < d.length; k += 4) if (d[k] < 250 || d[k + 1] < 250 || d[k + 2] < 250) n++; return n; }"""
    )
    assert coloured > 0
    # head metrics: every layer of A beside its matched layer of B
    heads = data(page, "[data-testid=compare-heads] tbody tr", "layerA", "entropyA", "entropyB")
    assert [int(a) for a, _, _ in heads] == list(range(30))
    metrics = body["head_metrics"]["metrics"]["entropy"]
    assert [float(a) for _, a, _ in heads] == pytest.approx(metrics["a"], abs=1e-6)
    assert [float(b) for *_, b in heads] == pytest.approx(metrics["b"], abs=1e-6)
    # attribution side by side and the rank agreement
    box = page.get_by_test_id("compare-attribution")
    assert float(box.get_attribute("data-spearman")) == pytest.approx(body["attribution"]["spearman"], abs=1e-9)
    assert float(box.get_attribute("data-kendall")) == pytest.approx(body["attribution"]["kendall"], abs=1e-9)
    scores = data(page, "[data-testid=compare-attribution] tbody tr", "unit", "a", "b")
    assert [int(u) for u, _, _ in scores] == list(range(len(body["units"])))
    assert [float(a) for _, a, _ in scores] == pytest.approx(body["attribution"]["a"], abs=1e-9)
    assert [float(b) for *_, b in scores] == pytest.approx(body["attribution"]["b"], abs=1e-9)
    screenshot(page, name)


def test_an_adapter_folder_that_does_not_exist_is_refused_in_one_line(page):
    analyze(page, ENGLISH)
    page.get_by_role("tab", name="Compare models").click()
    page.get_by_test_id("compare-adapter").fill("/no/such/adapter")
    page.get_by_test_id("compare-method").select_option("none")
    before = counter(page, "comparisons")
    page.get_by_test_id("compare-run").click()
    page.wait_for_function(f"Number(document.body.dataset.comparisons || 0) > {before}")
    error = page.get_by_test_id("error").inner_text()
    assert "does not exist" in error and "\n" not in error.strip()
