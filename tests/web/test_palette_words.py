"""Legends name the colours of the palette shown, and the generation panel and History redraw on a theme
or palette change, in real Chromium (web/palette.js colourName, palette.json "names").

The expected words are written here (what a reader sees in each palette: viridis runs from purple to
yellow, its signed pair is orange/blue); the expected colours are palette.json's numbers, blended here.
"""

from __future__ import annotations

import math

import httpx

from attnscope.render import language, palette
from tests.conftest import ENGLISH
from tests.web.conftest import screenshot
from tests.web.test_analysis_panels import choose_method
from tests.web.test_browser import analyze, counter
from tests.web.test_design import wait_render
from tests.web.test_generation_page import generate_on_page
from tests.web.test_language import switch

LIGHT_INK = (31, 35, 40)  # palette.json ink.text
DARK_INK = (230, 237, 243)  # palette.json ink_dark.text
RED, TEAL = (220, 38, 38), (13, 148, 136)
ORANGE, BLUE = (230, 97, 1), (33, 102, 172)
VIRIDIS = [(68, 1, 84), (59, 82, 139), (33, 145, 140), (94, 201, 98), (253, 231, 37)]
MARK = "（配色词）"  # this test's stored runs, findable among the session's


def js_round(x: float) -> int:
    return math.floor(x + 0.5)


def ramp(rgb, w: float, base=(255, 255, 255)) -> tuple[int, ...]:
    return tuple(js_round(b + (c - b) * w) for c, b in zip(rgb, base, strict=True))


def between(stops, w: float) -> tuple[int, ...]:
    x = w * (len(stops) - 1)
    i = min(len(stops) - 2, int(x))
    return tuple(js_round(a + (b - a) * (x - i)) for a, b in zip(stops[i], stops[i + 1], strict=True))


def legend(page) -> str:
    return page.locator("#legend").inner_text()


def colours(page, testid: str, rows: tuple[int, int] | None = None) -> set[tuple[int, int, int]]:
    """The opaque pixel colours of a canvas (rows [top, bottom) in canvas pixels, or all)."""
    top, bottom = rows or (0, 10_000)
    data = page.get_by_test_id(testid).evaluate(
        f"""c => {{ const h = Math.min(c.height, {bottom}) - {top};
        return [...c.getContext('2d').getImageData(0, {top}, c.width, h).data]; }}"""
    )
    return {tuple(data[i : i + 3]) for i in range(0, len(data), 4) if data[i + 3] == 255}  # type: ignore[misc]


def test_the_reports_words_name_the_default_palette():
    """The HTML report draws with the default palette: its notes must name its colours."""
    names = palette.palette()["palettes"]["red"]["names"]
    en, zh = language.words("en"), language.words("zh-CN")
    pos, neg = names["positive"], names["negative"]
    assert f"{pos['en']} positive" in en["importance.note"] and f"{neg['en']} negative" in en["importance.note"]
    assert f"{pos['zh-CN']}为正" in zh["importance.note"] and f"{neg['zh-CN']}为负" in zh["importance.note"]
    assert f"coloured {pos['en']} (agree, +1) to {neg['en']} (disagree" in en["agreement.note"]
    assert f"从{pos['zh-CN']}（一致，+1）到{neg['zh-CN']}（不一致" in zh["agreement.note"]


def test_tokens_legend_names_the_chosen_palettes_colours_in_both_languages(page, server):
    analyze(page, ENGLISH)
    assert legend(page).startswith("Red: attention from token")  # the default: unchanged words
    wait_render(page, lambda: page.get_by_test_id("palette-select").select_option("viridis"))
    assert legend(page).startswith("Purple → yellow: attention from token")
    assert "Red" not in legend(page)
    switch(page, "zh-CN")
    assert legend(page).startswith("紫 → 黄：第 "), legend(page)
    assert "红色" not in legend(page)
    # signed scores: viridis' pair is orange (+) / blue (−)
    choose_method(page, "grad-x-input", "token")
    assert page.locator("#legend").get_attribute("data-signed") == "true"
    assert "橙色为正，蓝色为负" in legend(page)
    switch(page, "en")
    assert "orange positive, blue negative" in legend(page)
    screenshot(page, "palette-words-viridis")
    # back to the default palette: red and teal again
    wait_render(page, lambda: page.get_by_test_id("palette-select").select_option("red"))
    assert "red positive, teal negative" in legend(page)
    page.get_by_test_id("method-select").select_option("")
    page.wait_for_function("document.getElementById('legend').innerText.startsWith('Red: attention from token')")
    switch(page, "zh-CN")
    assert legend(page).startswith("红色：第 ")
    assert page.get_by_test_id("error").is_hidden()


def test_generation_canvases_redraw_on_a_theme_or_palette_switch(page, server):
    generate_on_page(page, ENGLISH)
    diff_rows = (2, 20)  # the step diff's strip: key positions coloured by the signed difference
    # light theme, default palette: the strip's strongest cell is palette.json's red or teal exactly
    strip = colours(page, "step-diff", diff_rows)
    assert RED in strip or TEAL in strip
    marks = colours(page, "timeline-marks")
    assert LIGHT_INK in marks and DARK_INK not in marks
    legend_text = page.locator("#marks-legend").inner_text()
    assert legend_text.startswith("Marks under the timeline — dark: key frames") and "; red: loops" in legend_text
    assert "(red)" in page.locator("#trajectory-legend").inner_text()

    wait_render(page, lambda: page.get_by_test_id("palette-select").select_option("viridis"))
    strip = colours(page, "step-diff", diff_rows)
    assert (ORANGE in strip or BLUE in strip) and RED not in strip and TEAL not in strip
    assert "; orange: loops" in page.locator("#marks-legend").inner_text()
    assert "teal = less" not in page.locator("#diff-legend").inner_text()
    assert "orange = more attention" in page.locator("#diff-legend").inner_text()
    assert "(orange)" in page.locator("#trajectory-legend").inner_text()

    canvases = ["timeline-marks", "step-diff", "trajectory"]
    before = [page.get_by_test_id(c).evaluate("c => c.toDataURL()") for c in canvases]
    wait_render(page, lambda: page.get_by_test_id("theme-select").select_option("dark"))
    after = [page.get_by_test_id(c).evaluate("c => c.toDataURL()") for c in canvases]
    assert [a != b for a, b in zip(after, before, strict=True)] == [True] * len(canvases)
    marks = colours(page, "timeline-marks")
    assert DARK_INK in marks and LIGHT_INK not in marks  # the ticks and step numbers in the dark theme's ink
    assert page.locator("#marks-legend").inner_text().startswith("Marks under the timeline — light: key frames")
    screenshot(page, "palette-words-generation-dark")
    page.evaluate("localStorage.clear()")


def test_history_redraws_an_open_run_in_the_new_palette(page, server):
    answer = httpx.post(
        f"{server}/api/analyze", json={"text": f"{ENGLISH}{MARK}", "layer": 0, "head": 0}, timeout=120
    ).json()
    page.click("[data-testid=history-button]")
    page.fill("[data-testid=history-text]", MARK)
    before = counter(page, "historySearches")
    page.click("[data-testid=history-search]")
    page.wait_for_function(f"Number(document.body.dataset.historySearches || 0) > {before}")
    before = counter(page, "runOpens")
    page.locator(f"[data-testid=run-item][data-run-id='{answer['run_id']}'] [data-testid=run-open]").first.click()
    page.wait_for_function(f"Number(document.body.dataset.runOpens || 0) > {before}")
    box = page.get_by_test_id("stored-run")
    assert "Red: the stored attention weights" in box.inner_text()

    def chips() -> list[tuple[float, tuple[int, ...]]]:
        shown = page.locator("[data-testid=stored-token]").evaluate_all(
            "n => n.map(e => [Number(e.dataset.weight), getComputedStyle(e).backgroundColor])"
        )
        return [(w, tuple(int(c) for c in css[css.index("(") + 1 : css.index(")")].split(",")[:3])) for w, css in shown]

    weights = answer["attention"]["weights"]
    assert len(chips()) == len(weights)
    for w, rgb in chips():
        assert all(abs(a - b) <= 1 for a, b in zip(rgb, ramp(RED, w), strict=True)), (w, rgb)

    before = counter(page, "runRecolours")
    page.get_by_test_id("palette-select").select_option("viridis")
    page.wait_for_function(f"Number(document.body.dataset.runRecolours || 0) > {before}")
    assert "Purple → yellow: the stored attention weights" in box.inner_text()
    for w, rgb in chips():
        assert all(abs(a - b) <= 1 for a, b in zip(rgb, between(VIRIDIS, w), strict=True)), (w, rgb)
    switch(page, "zh-CN")  # the open run is fetched and drawn again in Chinese
    page.wait_for_function(
        "document.querySelector('[data-testid=stored-run]').innerText.includes('紫 → 黄：保存的注意力权重')"
    )
    page.evaluate("localStorage.clear()")
