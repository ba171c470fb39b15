"""The designed interface in real Chromium: themes through CSS variables (canvases redrawn), palettes whose
text stays readable (WCAG contrast computed here, independently), keyboard navigation, a view area that
keeps its size across tabs, the prediction in view, and the adapted contrast of long inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from attnscope.render import palette
from attnscope.render.palette import fmt, fmt_prob
from tests.conftest import CHINESE, ENGLISH
from tests.test_real_models import reference_gguf
from tests.web.conftest import SERVED_MODEL, screenshot
from tests.web.test_browser import analyze, api, counter, shown_weights

LIGHT_BACKGROUND = (255, 255, 255)
DARK_BACKGROUND = (13, 17, 23)  # palette.json ink_dark.background


def wcag_luminance(rgb) -> float:
    def channel(c: float) -> float:
        s = c / 255
        return s / 12.92 if s <= 0.03928 else ((s + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(c) for c in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a, b) -> float:
    high, low = sorted((wcag_luminance(a), wcag_luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def parse_rgb(css: str) -> tuple[int, int, int]:
    if css.startswith("#"):
        return tuple(int(css[i : i + 2], 16) for i in (1, 3, 5))  # type: ignore[return-value]
    inner = css[css.index("(") + 1 : css.index(")")].replace("/", ",")
    return tuple(round(float(part)) for part in inner.split(",")[:3])  # type: ignore[return-value]


def composite(css: str, base) -> tuple[int, int, int]:
    """A CSS rgb()/rgba() colour drawn over ``base``, computed here."""
    inner = css[css.index("(") + 1 : css.index(")")].split(",")
    alpha = float(inner[3]) if len(inner) == 4 else 1.0
    rgb = [float(c) for c in inner[:3]]
    return tuple(round(b + (c - b) * alpha) for c, b in zip(rgb, base, strict=True))  # type: ignore[return-value]


def wait_render(page, action) -> None:
    before = counter(page, "renders")
    action()
    page.wait_for_function(f"Number(document.body.dataset.renders || 0) > {before}", timeout=120_000)


def pixel(page, testid: str, x: int, y: int) -> tuple[int, int, int]:
    data = page.get_by_test_id(testid).evaluate(f"c => [...c.getContext('2d').getImageData({x}, {y}, 1, 1).data]")
    return tuple(data[:3])  # type: ignore[return-value]


def variable(page, name: str) -> str:
    return page.evaluate(f"getComputedStyle(document.documentElement).getPropertyValue('--{name}').trim()")


def blur(page) -> None:
    page.evaluate("document.activeElement && document.activeElement.blur()")


def test_theme_switch_changes_the_variables_and_redraws_canvases(page, server):
    analyze(page, ENGLISH)
    wait_render(page, lambda: page.locator("#tab-heatmap").click())
    page.wait_for_function("document.getElementById('heatmap').width > 1")
    cols = page.get_by_test_id("heatmap").evaluate("c => c.width")
    # row 0 attends only to itself (causal mask): weight 1 at (0, 0), 0 at (0, last)
    assert page.evaluate("document.documentElement.dataset.theme") == "system"
    assert variable(page, "background") == "#ffffff"
    assert pixel(page, "heatmap", cols - 1, 0) == LIGHT_BACKGROUND
    assert pixel(page, "heatmap", 0, 0) == (220, 38, 38)  # palette.json attention, full weight
    wait_render(page, lambda: page.get_by_test_id("theme-select").select_option("dark"))
    assert variable(page, "background") == "#0d1117"
    assert parse_rgb(page.evaluate("getComputedStyle(document.documentElement).backgroundColor")) == DARK_BACKGROUND
    assert parse_rgb(page.evaluate("getComputedStyle(document.documentElement).color")) == parse_rgb("#e6edf3")
    assert pixel(page, "heatmap", cols - 1, 0) == DARK_BACKGROUND  # the redrawn canvas starts from the dark page
    assert pixel(page, "heatmap", 0, 0) == (220, 38, 38)
    # a palette: the heatmap takes viridis' ends (palette.json), whatever the theme
    wait_render(page, lambda: page.get_by_test_id("palette-select").select_option("viridis"))
    assert pixel(page, "heatmap", cols - 1, 0) == (68, 1, 84)
    assert pixel(page, "heatmap", 0, 0) == (253, 231, 37)
    assert variable(page, "positive") == "230, 97, 1" and variable(page, "negative") == "33, 102, 172"  # orange / blue
    screenshot(page, "design-dark-viridis-heatmap")
    # kept across a reload; "system" follows prefers-color-scheme
    assert page.evaluate("localStorage.getItem('attnscope.theme')") == "dark"
    page.reload()
    page.wait_for_selector("body[data-ready='1']")
    assert page.get_by_test_id("theme-select").input_value() == "dark"
    assert page.get_by_test_id("palette-select").input_value() == "viridis"
    assert variable(page, "background") == "#0d1117"
    page.get_by_test_id("theme-select").select_option("light")
    assert variable(page, "background") == "#ffffff"
    page.get_by_test_id("theme-select").select_option("system")
    page.emulate_media(color_scheme="dark")
    assert variable(page, "background") == "#0d1117"
    page.emulate_media(color_scheme="light")
    assert variable(page, "background") == "#ffffff"
    page.evaluate("localStorage.clear()")


def test_text_on_coloured_cells_has_wcag_contrast(page, server):
    """Every palette, both themes, 65 steps of attention and of signed scores: black or white text
    reaches a contrast ratio of 4.5 (computed here from the colours the page draws)."""
    samples = page.evaluate(
        """async () => {
          const m = await import('/static/palette.js');
          const out = [];
          for (const theme of ['light', 'dark']) {
            m.setTheme(theme);
            for (const name of m.PALETTES) {
              m.setPalette(name);
              for (let i = 0; i <= 64; i++) {
                const t = i / 64;
                out.push({kind: 'attention', theme, name, t, colour: m.attentionRGB(t), ink: m.inkOnAlpha(t),
                  viaCss: m.inkOnCss(m.css(m.attentionRGB(t)))});
                const base = getComputedStyle(document.documentElement).getPropertyValue('--background').trim();
                for (const v of [t, -t]) {
                  const ink = m.inkOnScore(v, 1);
                  out.push({kind: 'score', theme, name, t: v, colour: m.scoreColour(v, 1), ink, base});
                }
              }
            }
          }
          m.setTheme('system'); m.setPalette('red');
          return out;
        }"""
    )
    assert len(samples) == 2 * 4 * 65 * 3
    for sample in samples:
        if sample["kind"] == "attention":
            colour = tuple(sample["colour"])
        else:
            colour = composite(sample["colour"], parse_rgb(sample["base"]))
        ratio = contrast(colour, parse_rgb(sample["ink"]))
        assert ratio >= 4.5, (sample, colour, ratio)
        assert sample["ink"] == palette.readable_ink(colour)  # the report's cells choose the same ink
        if sample["kind"] == "attention":
            assert sample["viaCss"] == sample["ink"]  # the PNG export's token text
    # the light theme's default ramp is the report's: white to palette.json's attention colour
    light_red = [s for s in samples if s["kind"] == "attention" and s["theme"] == "light" and s["name"] == "red"]
    for sample in light_red:
        expected = [math.floor(255 - (255 - c) * sample["t"] + 0.5) for c in (220, 38, 38)]
        assert np.abs(np.array(sample["colour"]) - expected).max() <= 1


@pytest.mark.parametrize("text", [ENGLISH, CHINESE])
def test_token_chips_are_readable_in_both_themes(page, server, text):
    analyze(page, text)
    for theme in ("light", "dark"):
        wait_render(page, lambda theme=theme: page.get_by_test_id("theme-select").select_option(theme))
        base = parse_rgb(variable(page, "background"))
        chips = page.eval_on_selector_all(
            "[data-testid=token]",
            "els => els.map(e => [getComputedStyle(e).backgroundColor, getComputedStyle(e).color])",
        )
        assert chips
        for background, colour in chips:
            shown = composite(background, base) if background.startswith("rgba") else parse_rgb(background)
            assert contrast(shown, parse_rgb(colour)) >= 4.5, (theme, background, colour)
    page.evaluate("localStorage.clear()")


def test_keyboard_moves_layer_head_query_and_views(page, server):
    analyze(page, ENGLISH)
    blur(page)
    layers = page.get_by_test_id("layer-select").evaluate("s => [...s.options].map(o => o.value)")
    assert page.get_by_test_id("layer-select").input_value() == layers[-1]

    def key(name: str) -> None:
        before = counter(page, "analyses")
        page.keyboard.press(name)
        page.wait_for_function(f"Number(document.body.dataset.analyses || 0) > {before}")

    key("ArrowUp")
    assert page.get_by_test_id("layer-select").input_value() == layers[-2]
    key("ArrowDown")
    assert page.get_by_test_id("layer-select").input_value() == layers[-1]
    assert page.get_by_test_id("head-select").input_value() == "mean"
    key("Shift+ArrowDown")
    assert page.get_by_test_id("head-select").input_value() == "max"
    key("Shift+ArrowDown")
    assert page.get_by_test_id("head-select").input_value() == "0"
    last = len(api(server, text=ENGLISH)["tokens"]) - 1
    assert page.locator(".tok.query").get_attribute("data-token-index") == str(last)
    key("ArrowLeft")
    assert page.locator(".tok.query").get_attribute("data-token-index") == str(last - 1)
    key("ArrowRight")
    assert page.locator(".tok.query").get_attribute("data-token-index") == str(last)
    # typing in the prompt: the arrows are the text box's
    page.get_by_test_id("prompt-input").focus()
    before = counter(page, "analyses")
    page.keyboard.press("ArrowUp")
    page.keyboard.press("2")
    page.wait_for_timeout(300)
    assert counter(page, "analyses") == before
    assert page.locator("#tab-tokens").get_attribute("aria-selected") == "true"
    assert page.get_by_test_id("prompt-input").input_value() == "2" + ENGLISH  # the caret went up, then "2"
    # views by number and by [ ]
    blur(page)
    page.keyboard.press("2")
    assert page.locator("#tab-heatmap").get_attribute("aria-selected") == "true"
    page.keyboard.press("]")
    assert page.locator("#tab-grid").get_attribute("aria-selected") == "true"
    page.keyboard.press("[")
    page.keyboard.press("[")
    assert page.locator("#tab-tokens").get_attribute("aria-selected") == "true"
    # the list of keys, and a visible focus ring
    page.keyboard.press("?")
    help_box = page.get_by_test_id("keys-help")
    assert help_box.is_visible()
    assert "Shift" in help_box.inner_text() and "↑" in help_box.inner_text()
    outline = page.evaluate(
        "(() => { const s = getComputedStyle(document.activeElement); return [s.outlineStyle, s.outlineWidth]; })()"
    )
    assert outline == ["solid", "2px"]
    page.keyboard.press("Escape")
    assert not help_box.is_visible()


def test_view_area_keeps_its_size_and_the_prediction_stays_in_view(page, server):
    analyze(page, ENGLISH)
    box = page.locator("#views").bounding_box()
    tabs = page.locator("#tabs [role=tab]")
    assert tabs.count() >= 10
    for index in [*range(tabs.count()), 0]:
        tabs.nth(index).click()
        page.wait_for_timeout(150)
        assert page.locator("#views").bounding_box() == box, tabs.nth(index).get_attribute("id")
    # the top-10 in the details column: the API's candidates, formatted as 3 digits and %, kept in view
    expected = api(server, text=ENGLISH, top_k=10)["prediction"]["top"]
    rows = page.get_by_test_id("prediction-candidate")
    assert rows.count() == 10
    shown = rows.evaluate_all(
        "els => els.map(e => [e.dataset.token, Number(e.dataset.prob), e.cells[2].textContent, e.cells[2].title])"
    )
    for (token, prob, percent, exact), candidate in zip(shown, expected, strict=True):
        assert token == candidate["token"] and abs(prob - candidate["prob"]) < 1e-12
        assert (percent, exact) == (fmt_prob(candidate["prob"]), fmt(candidate["prob"]))
    page.evaluate("window.scrollTo(0, document.documentElement.scrollHeight)")
    page.wait_for_timeout(100)
    assert page.evaluate("window.scrollY") > 0
    panel = page.get_by_test_id("prediction-panel").bounding_box()
    assert panel is not None and panel["y"] >= 0 and panel["y"] + 40 <= 900


def test_long_input_adapts_the_contrast_and_pools_the_head_view(page, server):
    sentence = "The river carried old leaves past the mill, and the miller counted them twice before dusk. "
    analyze(page, sentence * 24)
    weights = np.array(shown_weights(page))
    assert len(weights) > 400
    bar = page.locator("#legend [data-testid=colour-bar]")
    caption = bar.inner_text()
    assert "99th percentile" in caption and "clipped" in caption
    high = float(bar.locator(".tick").nth(1).get_attribute("data-value"))
    assert high == pytest.approx(np.percentile(weights, 99), rel=1e-9, abs=1e-12)
    assert high < weights.max()
    strengths = np.array(
        page.eval_on_selector_all("[data-testid=token]", "els => els.map(e => Number(e.style.getPropertyValue('--a')))")
    )
    np.testing.assert_allclose(strengths, np.clip(weights / high, 0, 1), atol=1e-4)
    assert (strengths > 0.2).sum() > (weights > 0.2).sum()  # more of the text is visible than at raw colours
    # the heatmap of the same text: clipped at the 99th percentile of the map's non-zero weights, computed
    # here with plain transformers (eager attention, last layer, mean of heads; the page reads float16)
    wait_render(page, lambda: page.locator("#tab-heatmap").click())
    scale = page.locator("#heatmap-scale [data-testid=colour-bar]")
    assert "99th percentile" in scale.inner_text() and "map" in scale.inner_text()
    model, tokenizer = reference_gguf(SERVED_MODEL)
    ids = tokenizer(sentence * 24, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        matrix = model(input_ids=ids, output_attentions=True).attentions[-1][0].mean(dim=0).numpy()
    assert matrix.shape[1] == len(weights)
    clipped_at = float(scale.locator(".tick").nth(1).get_attribute("data-value"))
    assert clipped_at == pytest.approx(np.percentile(matrix[matrix > 0], 99), rel=2e-2)
    assert page.get_by_test_id("heatmap").get_attribute("data-clip") != ""
    wait_render(page, lambda: page.locator("#tab-grid").click())
    assert "99th percentile" in page.locator("#grid-scale [data-testid=colour-bar]").inner_text()
    wait_render(page, lambda: page.locator("#tab-lines").click())
    pooled = int(page.get_by_test_id("head-view").get_attribute("data-pooled"))
    assert pooled == math.ceil(len(weights) / 400)
    screenshot(page, "design-long-head-view")
