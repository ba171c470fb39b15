"""The page's export menu in Chromium: the view shown downloads as the server's figure (a PNG at least
1600 px wide, not blank; an SVG whose title names the view, or the method the tokens are coloured by)
and its numbers, on the English and the Chinese example, in both languages."""

from __future__ import annotations

import csv
import io
import xml.etree.ElementTree as ElementTree

import httpx
import numpy as np
import pytest

from tests.conftest import CHINESE, ENGLISH
from tests.render.test_exports_core import not_blank, png_pixels
from tests.web.conftest import screenshot
from tests.web.test_browser import analyze, counter
from tests.web.test_language import switch


def exported(page, tmp_path, form: str) -> bytes:
    """Open the menu, pick ``form`` and return the downloaded file's bytes (no error shown)."""
    page.wait_for_selector("[data-testid=export-menu]")
    before = counter(page, "exports")
    page.locator("[data-testid=export-menu] > summary").click()
    with page.expect_download(timeout=300_000) as download:
        page.click(f"[data-testid=export-{form}-server]")
    page.wait_for_function(f"Number(document.body.dataset.exports || 0) > {before}")
    path = tmp_path / download.value.suggested_filename
    download.value.save_as(path)
    assert page.locator("[data-testid=error]").is_hidden()
    return path.read_bytes()


def svg_texts(data: bytes) -> str:
    return " ".join(node.text or "" for node in ElementTree.fromstring(data).iter() if node.tag.endswith("text"))


@pytest.mark.parametrize("text", [ENGLISH, CHINESE])
def test_the_menu_downloads_the_servers_figure_of_the_view(page, server, tmp_path, text):
    if text == CHINESE:
        switch(page, "zh-CN")
        assert page.locator("[data-testid=export-menu] > summary").inner_text() == "导出…"
    analyze(page, text)
    page.click("#tab-heatmap")
    png = png_pixels(exported(page, tmp_path, "png"))
    assert png.shape[1] >= 1600 and not_blank(png) > 0.01
    assert "Attention heatmap" in svg_texts(exported(page, tmp_path, "svg"))
    rows = [
        r
        for r in csv.reader(io.StringIO(exported(page, tmp_path, "csv").decode("utf-8")))
        if r and not r[0].startswith("#")
    ]
    assert rows[0] == ["query", "query_token", "key", "key_token", "weight"]
    trace_id = httpx.post(f"{server}/api/analyze", json={"text": text}, timeout=600).json()[
        "trace_id"
    ]  # the page's trace
    layer = int(page.get_by_test_id("layer-select").input_value())
    head = page.get_by_test_id("head-select").input_value()
    expected = httpx.post(
        f"{server}/api/export",
        json={"view": "heatmap", "format": "csv", "trace_id": trace_id, "layer": layer, "head": head},
        timeout=600,
    )
    assert expected.status_code == 200
    same = [r for r in csv.reader(io.StringIO(expected.text)) if r and not r[0].startswith("#")]
    np.testing.assert_allclose([float(r[4]) for r in rows[1:]], [float(r[4]) for r in same[1:]], atol=1e-6)
    screenshot(page, f"export-menu-{'zh' if text == CHINESE else 'en'}")
    if text == CHINESE:
        switch(page, "en")


def test_the_token_view_coloured_by_a_method_exports_that_method(page, tmp_path):
    analyze(page, ENGLISH)
    before = counter(page, "renders")
    page.get_by_test_id("method-select").select_option("rollout")
    page.wait_for_function(f"Number(document.body.dataset.renders || 0) > {before}")
    page.click("#tab-tokens")
    texts = svg_texts(exported(page, tmp_path, "svg"))
    assert "rollout" in texts and "attention weight" not in texts
    png = png_pixels(exported(page, tmp_path, "png"))
    assert png.shape[1] >= 1600 and not_blank(png) > 0.01


def test_a_generation_exports_its_timeline(page, server, tmp_path):
    """After Generate, the menu offers the generation's timeline: its CSV holds every step with the
    probability /api/generate gives for it (greedy: the same tokens), and its PNG is a real figure;
    step attribution is offered only when the generation has it."""
    from tests.web.test_generation_page import NEW_TOKENS, generate_on_page

    generate_on_page(page, ENGLISH)
    expected = httpx.post(f"{server}/api/generate", json={"text": ENGLISH, "max_new_tokens": NEW_TOKENS}, timeout=300)
    steps = expected.json()["steps"]
    page.locator("[data-testid=export-menu] > summary").click()
    assert page.get_by_test_id("export-step-attribution-png").is_hidden()
    page.locator("[data-testid=export-menu] > summary").click()
    before = counter(page, "exports")
    page.locator("[data-testid=export-menu] > summary").click()
    with page.expect_download(timeout=300_000) as download:
        page.click("[data-testid=export-timeline-csv]")
    page.wait_for_function(f"Number(document.body.dataset.exports || 0) > {before}")
    path = tmp_path / download.value.suggested_filename
    download.value.save_as(path)
    rows = [r for r in csv.reader(io.StringIO(path.read_text("utf-8"))) if r and not r[0].startswith("#")]
    header, body = rows[0], rows[1:]
    assert header[:4] == ["step", "position", "token", "prob"]
    probs = {int(r[0]): float(r[3]) for r in body}
    assert sorted(probs) == list(range(len(steps)))
    np.testing.assert_allclose([probs[i] for i in range(len(steps))], [s["prob"] for s in steps], atol=1e-6)
    before = counter(page, "exports")
    page.locator("[data-testid=export-menu] > summary").click()
    with page.expect_download(timeout=300_000) as download:
        page.click("[data-testid=export-timeline-png]")
    page.wait_for_function(f"Number(document.body.dataset.exports || 0) > {before}")
    png = tmp_path / download.value.suggested_filename
    download.value.save_as(png)
    pixels = png_pixels(png.read_bytes())
    assert pixels.shape[1] >= 1600 and not_blank(pixels) > 0.01
