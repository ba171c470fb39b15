"""A long input (thousands of tokens) in real Chromium: bounded DOM, virtual scrolling, tiled heatmap."""

from __future__ import annotations

import httpx
import pytest

from tests.web.conftest import screenshot
from tests.web.test_browser import counter

LONG = " ".join(f"Paragraph {i}: the river city traded salt and grain with its neighbours." for i in range(200))


def dom_size(page) -> int:
    return int(page.evaluate("document.getElementsByTagName('*').length"))


def wait_tiles(page) -> None:
    page.wait_for_function(
        "() => { const c = document.querySelector('[data-testid=heatmap]');"
        " return Number(c.dataset.tiles || 0) > 0 && c.dataset.missing === '0'; }",
        timeout=120_000,
    )


def test_long_input_stays_bounded_and_interactive(page, server):
    before = counter(page, "analyses")
    page.get_by_test_id("prompt-input").fill(LONG)
    page.get_by_test_id("prompt-input").press("Control+Enter")
    page.wait_for_function(f"Number(document.body.dataset.analyses || 0) > {before}", timeout=600_000)
    assert not page.get_by_test_id("error").is_visible()
    api = httpx.post(f"{server}/api/analyze", json={"text": LONG}, timeout=600).json()  # cached trace
    n = len(api["tokens"])
    assert n > 2500
    # token strip: virtualised, DOM bounded
    strip = page.get_by_test_id("token-strip")
    assert "virtual" in strip.get_attribute("class")
    mounted = page.locator("[data-testid=token]").count()
    assert 0 < mounted < n
    assert dom_size(page) <= 2000
    strip.evaluate("s => { s.scrollTop = s.scrollHeight / 2; }")
    page.wait_for_function("document.getElementById('strip').dataset.mountedBlocks.split('-')[0] !== '0'")
    indexes = [
        int(i) for i in page.locator("[data-testid=token]").evaluate_all("els => els.map(e => e.dataset.tokenIndex)")
    ]
    assert min(indexes) > 0 and max(indexes) < n - 1  # a window from the middle of the text
    assert dom_size(page) <= 2000
    token = page.locator("[data-testid=token]").nth(len(indexes) // 2)
    index = int(token.get_attribute("data-token-index"))
    assert float(token.get_attribute("data-weight")) == pytest.approx(api["attention"]["weights"][index], abs=1e-12)
    token.hover()
    assert page.get_by_test_id("tooltip").is_visible()
    screenshot(page, "long-token-view")

    # heatmap: tiles, zoom, hover
    page.get_by_test_id("scale-select").select_option("minmax")
    page.get_by_role("tab", name="Heatmap").click()
    wait_tiles(page)
    canvas = page.get_by_test_id("heatmap")
    width, height = canvas.evaluate("c => [c.width, c.height]")
    assert width <= 4096 and height <= 4096
    top_level = int(canvas.get_attribute("data-level"))
    assert top_level >= 1  # about one tile pixel per screen pixel: a pooled level
    assert "zoom levels" in page.get_by_test_id("heatmap-mode").inner_text()
    colours = canvas.evaluate(
        "c => { const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; let red = 0;"
        " for (let i = 0; i < d.length; i += 4) if (d[i + 1] < 200) red++; return red; }"
    )
    assert colours > 100, "the overview is blank"
    canvas.scroll_into_view_if_needed()  # the view area may start low (controls above it): the map in the window
    box = canvas.bounding_box()
    before_bytes = int(canvas.get_attribute("data-bytes"))
    page.mouse.move(box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.6)
    for _ in range(12):
        page.mouse.wheel(0, -400)
    page.wait_for_function(f"Number(document.querySelector('[data-testid=heatmap]').dataset.level) < {top_level}")
    wait_tiles(page)
    moved = int(canvas.get_attribute("data-bytes")) - before_bytes
    assert 0 < moved < 2_000_000  # one zoom interaction moves well under 2 MB
    page.mouse.move(box["x"] + box["width"] * 0.31, box["y"] + box["height"] * 0.61)
    page.wait_for_function("document.querySelector('[data-testid=heatmap-readout]').textContent.startsWith('query')")
    readout = page.get_by_test_id("heatmap-readout").inner_text()
    query = int(readout.split()[1])
    key = int(readout.split("→ key ")[1].split()[0])
    row = httpx.post(f"{server}/api/analyze", json={"text": LONG, "query": query}, timeout=600).json()
    assert float(readout.rsplit(": ", 1)[1]) == pytest.approx(row["attention"]["weights"][key], abs=1e-3)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.3, steps=5)
    page.mouse.up()
    wait_tiles(page)
    tags = page.evaluate(
        "() => { const c = {}; for (const e of document.getElementsByTagName('*'))"
        " c[e.tagName] = (c[e.tagName] || 0) + 1; return c; }"
    )
    assert dom_size(page) <= 2000, sorted(tags.items(), key=lambda kv: -kv[1])[:5]
    screenshot(page, "long-heatmap")
