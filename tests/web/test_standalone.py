"""The standalone HTML file (attnscope.render.standalone) in Chromium: opened from disk with every
request that is not file:, data:, blob: or about: aborted, it shows the page's own views of the trace.
The numbers it shows are compared with plain transformers (eager attention, output_attentions=True;
the logits' softmax) — not with the code under test — within float16's precision (the file's arrays)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from attnscope.capture import capture, generate
from attnscope.render import palette
from attnscope.render.standalone import standalone_html, write_standalone
from tests.conftest import CHINESE, ENGLISH, packaged, tiny
from tests.eager import eager

F16 = 1e-3  # float16 keeps 11 significant bits: |w - f16(w)| <= 2^-12 for w <= 1, plus float32 noise
ALLOWED = ("file:", "data:", "blob:", "about:")


def expected_rgb(weight: float) -> tuple[int, int, int]:
    """The light theme's attention colour by hand: page background → palette.json's attention colour."""
    data = palette.palette()
    base = [int(data["ink"]["background"][i : i + 2], 16) for i in (1, 3, 5)]
    top = data["attention"]["rgb"]
    return tuple(round(b + (c - b) * min(1.0, max(0.0, weight))) for b, c in zip(base, top, strict=True))


class Opened:
    """A page of the file, offline: aborted requests and console errors are kept for the asserts."""

    def __init__(self, browser, path: Path, *, locale: str = "en-US") -> None:
        self.context = browser.new_context(viewport={"width": 1280, "height": 900}, locale=locale)
        self.blocked: list[str] = []
        self.errors: list[str] = []
        self.context.route("**/*", self.route)
        self.page = self.context.new_page()
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.goto(path.as_uri())
        self.page.wait_for_function("Number(document.body.dataset.renders || 0) > 0", timeout=90_000)

    def route(self, route) -> None:
        if route.request.url.startswith(ALLOWED):
            route.continue_()
        else:
            self.blocked.append(route.request.url)
            route.abort()

    def renders(self) -> int:
        return int(self.page.evaluate("Number(document.body.dataset.renders || 0)"))

    def after(self, action) -> None:
        """Run ``action`` and wait for the analysis it starts to be drawn."""
        before = int(self.page.evaluate("Number(document.body.dataset.analyses || 0)"))
        action()
        self.page.wait_for_function(f"Number(document.body.dataset.analyses || 0) > {before}", timeout=20_000)
        self.page.wait_for_timeout(100)

    def weights(self) -> np.ndarray:
        return np.array(
            self.page.eval_on_selector_all("[data-testid=token]", "s => s.map(x => Number(x.dataset.weight))")
        )

    def colours(self) -> list[tuple[int, ...]]:
        found = self.page.eval_on_selector_all(
            "[data-testid=token]", "s => s.map(x => getComputedStyle(x).backgroundColor)"
        )
        return [tuple(int(v) for v in re.findall(r"\d+", c)[:3]) for c in found]

    def close(self) -> None:
        self.context.close()


@pytest.mark.parametrize(("text", "language"), [(ENGLISH, "en"), (CHINESE, "zh-CN")])
def test_the_file_shows_eager_attention_and_predictions_offline(browser, tmp_path, text, language):
    model = tiny("llama")
    trace = capture(model, text)
    ids = [t.id for t in trace.tokens]
    maps, probs = eager(model, ids)
    path = write_standalone(trace, tmp_path / "trace.html", language=language)
    opened = Opened(browser, path)
    page = opened.page
    try:
        last = len(ids) - 1
        want = maps[-1][:, last].mean(axis=0)  # the default view: last layer, mean of heads, last query
        assert np.abs(opened.weights() - want).max() < F16
        for shown, weight in zip(opened.colours(), opened.weights(), strict=True):
            assert max(abs(a - b) for a, b in zip(shown, expected_rgb(weight), strict=True)) <= 1
        strip = page.locator("[data-testid=token]").all_inner_texts()
        assert "".join(t for t, token in zip(strip, trace.tokens, strict=True) if not token.special) == text
        top = int(np.argmax(probs[last]))
        shown = page.locator("[data-testid=prediction]")
        assert int(shown.get_attribute("data-token-id")) == top
        assert abs(float(shown.get_attribute("data-prob")) - probs[last, top]) < 1e-4
        if language == "zh-CN":  # the page's own words in Chinese, the banner too
            assert page.locator("#tab-heatmap").inner_text() == "热力图"
            assert "独立文件" in page.locator("[data-testid=standalone-banner]").inner_text()
        # layer 0, head 1; then another query (a token clicked): every head's whole map is in the file
        opened.after(lambda: page.select_option("#layer", "0"))
        opened.after(lambda: page.select_option("#head", "1"))
        assert np.abs(opened.weights() - maps[0][1, last]).max() < F16
        opened.after(lambda: page.locator("[data-testid=token]").nth(3).click())
        assert np.abs(opened.weights()[:4] - maps[0][1, 3, :4]).max() < F16
        # the all-heads grid, the heatmap and the model view draw from the file
        for tab in ("grid", "heatmap", "model"):
            page.click(f"#tab-{tab}")
            page.wait_for_timeout(500)
            assert page.locator("#error").inner_text() == "", tab
        assert page.locator("[data-testid=grid-cell]").count() == len(maps) * maps[0].shape[0]
        assert opened.blocked == [] and opened.errors == []
    finally:
        opened.close()


def test_what_the_file_lacks_is_refused_in_the_pages_language(browser, tmp_path):
    model = tiny("llama")
    trace = capture(model, ENGLISH)
    maps, _ = eager(model, [t.id for t in trace.tokens])
    for language, words in (("en", "attnscope serve"), ("zh-CN", "attnscope serve")):
        path = tmp_path / f"{language}.html"
        path.write_bytes(standalone_html(trace, language=language, content="rows"))
        opened = Opened(browser, path)
        page = opened.page
        try:  # every head's row at the last query is there; another query's is not
            opened.after(lambda page=page: page.select_option("#head", "2"))
            assert np.abs(opened.weights() - maps[-1][2, -1]).max() < F16
            opened.after(lambda page=page: page.locator("[data-testid=token]").nth(2).click())
            error = page.locator("#error").inner_text()
            assert words in error and ("需要" in error or "请用" in error) == (language == "zh-CN")
        finally:
            opened.close()


def test_layer_means_in_8_bits_are_within_their_stated_precision(browser, tmp_path):
    model = tiny("llama")
    trace = capture(model, ENGLISH)
    maps, _ = eager(model, [t.id for t in trace.tokens])
    path = tmp_path / "u8.html"
    path.write_bytes(standalone_html(trace, content="layers-u8"))
    opened = Opened(browser, path)
    try:
        opened.after(lambda: opened.page.locator("[data-testid=token]").nth(5).click())
        want = maps[-1][:, 5].mean(axis=0)
        step = want.max() / 255  # 8 bits of the row's maximum: half a step of rounding, plus float noise
        assert np.abs(opened.weights()[:6] - want[:6]).max() <= step / 2 + 1e-5
        assert opened.blocked == [] and opened.errors == []
    finally:
        opened.close()


def test_a_generation_opens_with_its_steps(browser, tmp_path):
    model = tiny("llama")
    trace = generate(model, ENGLISH, max_new_tokens=5)
    path = write_standalone(trace, tmp_path / "generation.html")
    opened = Opened(browser, path)
    page = opened.page
    try:
        page.wait_for_function("Number(document.body.dataset.generations || 0) > 0")
        steps = page.locator("[data-testid=step-token]")
        assert steps.count() == 5
        assert [steps.nth(i).get_attribute("data-token") for i in range(5)] == [t.text for t in trace.generated_tokens]
        assert page.locator("#error").inner_text() == ""
        assert opened.blocked == [] and opened.errors == []
    finally:
        opened.close()


@pytest.mark.slow
@pytest.mark.parametrize("text", [ENGLISH, CHINESE])
def test_the_default_model_in_the_file_matches_eager_attention(browser, tmp_path, text):
    model = packaged("qwen2.5-coder-0.5b")
    trace = capture(model, text)
    ids = [t.id for t in trace.tokens]
    maps, probs = eager(model, ids)
    opened = Opened(browser, write_standalone(trace, tmp_path / "qwen.html", language="zh-CN"))
    try:
        assert np.abs(opened.weights() - maps[-1][:, -1].mean(axis=0)).max() < F16
        strip = opened.page.locator("[data-testid=token]").all_inner_texts()
        assert "".join(strip) == text  # Chinese characters whole, as the text has them
        shown = opened.page.locator("[data-testid=prediction]")
        top = int(np.argmax(probs[-1]))
        assert int(shown.get_attribute("data-token-id")) == top
        assert abs(float(shown.get_attribute("data-prob")) - probs[-1, top]) < 1e-3
        if text == CHINESE:
            assert shown.get_attribute("data-token") == "北京"
        assert opened.blocked == [] and opened.errors == []
    finally:
        opened.close()


@pytest.mark.slow
def test_a_long_map_is_drawn_from_tiles_cut_in_the_browser(browser, tmp_path):
    from benchmarks.capture import text_of_tokens

    model = packaged("smollm2-135m")
    trace = capture(model, text_of_tokens(model.tokenizer, 600))
    maps, _ = eager(model, [t.id for t in trace.tokens])
    mean = maps[-1].mean(axis=0)  # (query, key): the heatmap's default map
    opened = Opened(browser, write_standalone(trace, tmp_path / "long.html"))
    page = opened.page
    try:
        page.click("#tab-heatmap")
        canvas = page.locator("[data-testid=heatmap]")
        page.wait_for_function("Number(document.getElementById('heatmap').dataset.tiles || 0) > 0", timeout=30_000)
        assert "tiles" in page.locator("[data-testid=heatmap-mode]").inner_text()
        canvas.scroll_into_view_if_needed()
        box, scale = canvas.bounding_box(), float(canvas.get_attribute("data-scale"))
        row, col = 450, 120
        page.mouse.move(box["x"] + (col + 0.5) * scale, box["y"] + (row + 0.5) * scale)
        page.wait_for_function("document.querySelector('[data-testid=heatmap-readout]').dataset.value !== undefined")
        shown = float(page.locator("[data-testid=heatmap-readout]").get_attribute("data-value"))
        assert abs(shown - mean[row, col]) < F16
        assert page.locator("#error").inner_text() == ""
        assert opened.blocked == [] and opened.errors == []
    finally:
        opened.close()
