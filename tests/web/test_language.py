"""The bilingual interface, in Chromium: English and 简体中文 have the same keys, every key the code
looks up exists, the page starts in the browser's language, and switching the language with
``language-select`` after an analysis relabels the page and re-mounts the views while the tokens, the
prediction and the numbers stay."""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import pytest

from tests.conftest import CHINESE
from tests.web.conftest import screenshot
from tests.web.test_privacy_page import analyze

WEB = Path(__file__).resolve().parents[2] / "src" / "attnscope" / "web"
# t("key" ...) with a literal key (keys built at run time, t(`x.${y}`), are not checked here)
LOOKUP = re.compile(r"""\bt\(\s*["']([A-Za-z0-9_.\- ]+)["']""")
# English words the controls bar shows in English; none may be left in Chinese
CONTROL_WORDS = ["layer", "head", "colour", "renormalise", "special tokens", "personal data", "export", "signed",
                 "unit", "mean of heads", "attention row", "raw probability"]  # fmt: skip


def code(path: Path) -> str:
    """A module's text without its // comments (which show the API with example keys)."""
    return re.sub(r"(^|\s)//.*", "", path.read_text("utf-8"), flags=re.MULTILINE)


def keys(page, language: str) -> set[str]:
    return set(page.evaluate(f"async () => (await import('/static/i18n.js')).keys({language!r})"))


@pytest.fixture
def chinese_page(browser, server):
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="zh-CN")
    page = context.new_page()
    page.goto(server)
    page.wait_for_selector("body[data-ready='1']")
    page.wait_for_function("document.querySelectorAll('#model-select option').length > 0")
    yield page
    context.close()


def test_both_languages_have_every_key_and_every_key_used_exists(page):
    english, chinese = keys(page, "en"), keys(page, "zh-CN")
    assert len(english) > 300
    assert english - chinese == set(), "keys without a Chinese text"
    assert chinese - english == set(), "keys without an English text"
    used = {(path.relative_to(WEB), key) for path in WEB.rglob("*.js") for key in LOOKUP.findall(code(path))}
    assert len(used) > 200
    missing = sorted(f"{path}: {key}" for path, key in used if key not in english)
    assert missing == [], missing
    texts = page.evaluate(
        """async () => { const m = await import('/static/i18n.js');
        return m.keys('zh-CN').map((k) => [k, m.textIn('zh-CN', k), m.textIn('en', k)]); }"""
    )
    # Chinese texts are Chinese: one without a CJK character must be a symbol, a number or a name kept as is
    cjk = re.compile("[\u4e00-\u9fff]")
    untranslated = [k for k, zh, en in texts if zh == en and re.search(r"[a-z]{4,}", en) and not cjk.search(zh)]
    assert untranslated == [], untranslated


def visible_words(page, selector: str) -> str:
    return page.locator(selector).first.inner_text()


def switch(page, language: str) -> None:
    before = int(page.evaluate("Number(document.body.dataset.languages || 0)"))
    page.select_option("[data-testid=language-select]", language)
    page.wait_for_function(f"Number(document.body.dataset.languages || 0) > {before}")


def tokens_and_prediction(page) -> tuple[list[str], str, str]:
    chips = page.locator("[data-testid=token]").all_inner_texts()
    prediction = page.get_by_test_id("prediction")
    return chips, prediction.get_attribute("data-token"), prediction.get_attribute("data-prob")


def tab_titles(page) -> list[str]:
    return page.locator("#tabs [role=tab]").all_inner_texts()


def test_the_page_follows_the_browser_and_switches_language_keeping_the_analysis(chinese_page):
    page = chinese_page
    assert page.locator("[data-testid=language-select]").input_value() == "zh-CN"
    assert page.evaluate("document.documentElement.lang") == "zh-CN"
    assert visible_words(page, "[data-testid=analyze-button]").startswith("分析")
    assert page.get_by_test_id("generate-button").inner_text() == "生成"
    analyze(page, CHINESE)
    assert page.get_by_test_id("error").is_hidden()
    chinese_tabs = tab_titles(page)
    assert chinese_tabs[0] == "词元" and "热力图" in chinese_tabs
    controls = page.locator("section.controls").first.inner_text()
    left = [word for word in CONTROL_WORDS if word in controls.lower()]
    assert left == [], f"English left in the controls bar: {left}\n{controls}"
    assert "第 " in page.locator("[data-testid=layer-select] option:checked").inner_text()
    assert "红色" in page.locator("#legend").inner_text()
    chips, token, prob = tokens_and_prediction(page)
    assert "".join(chips).replace("␣", " ") and token

    switch(page, "en")
    assert page.evaluate("localStorage.getItem('attnscope.language')") == "en"
    english_tabs = tab_titles(page)
    assert english_tabs[0] == "Tokens" and "Heatmap" in english_tabs and len(english_tabs) == len(chinese_tabs)
    assert visible_words(page, "[data-testid=analyze-button]").startswith("Analyze")
    assert page.locator("[data-testid=layer-select] option:checked").inner_text().startswith("layer ")
    assert page.locator("#legend").inner_text().startswith("Red: attention from token")
    # the analysis is not redone: the same tokens and numbers
    assert tokens_and_prediction(page) == (chips, token, prob)
    weights = page.locator("[data-testid=token]").evaluate_all("(nodes) => nodes.map((n) => n.dataset.weight)")

    switch(page, "zh-CN")
    assert tab_titles(page) == chinese_tabs
    assert tokens_and_prediction(page) == (chips, token, prob)
    assert page.locator("[data-testid=token]").evaluate_all("(nodes) => nodes.map((n) => n.dataset.weight)") == weights
    # every view shown after the switch has content (its root was emptied and mounted again)
    for view in ["heatmap", "grid", "lines", "parts", "agreement", "tokens"]:
        before = int(page.evaluate("Number(document.body.dataset.renders || 0)"))
        page.click(f"#tab-{view}")
        page.wait_for_function(f"Number(document.body.dataset.renders || 0) > {before}")
        section = page.locator(f"#view-{view}")
        assert section.is_visible() and section.evaluate("(node) => node.children.length") > 0
        assert len(section.inner_text().strip()) > 10, view
        assert re.search("[\u4e00-\u9fff]", section.inner_text()), view
    screenshot(page, "language-chinese")
    assert page.get_by_test_id("error").is_hidden()


def test_the_report_button_downloads_the_report_in_the_pages_language(chinese_page, tmp_path):
    page = chinese_page
    analyze(page, CHINESE)
    with page.expect_download(timeout=600_000) as download:
        page.click("[data-testid=report-button]")
    path = tmp_path / "report.zip"
    download.value.save_as(path)
    with zipfile.ZipFile(path) as archive:
        report = archive.read("report.html").decode("utf-8")
    assert "<html lang='zh-CN'>" in report and "<h2>观察</h2>" in report and "<h2>Observations</h2>" not in report
    assert page.get_by_test_id("error").is_hidden()
