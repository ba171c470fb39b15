"""The Syntax view in real Chromium: the English example's spaCy parse (or the install message) and a
pasted CoNLL-U parse with its heads table equal to POST /api/syntax, a row opening its head; the
Chinese example's jieba words and parts of speech with the message that relations need a Chinese
pipeline."""

from __future__ import annotations

import httpx

from attnscope.analysis.parsers import installed_pipelines
from tests.conftest import CHINESE, ENGLISH
from tests.web.conftest import screenshot
from tests.web.test_browser import analyze, counter

ENGLISH_CONLLU = "\n".join(
    "\t".join([str(n), form, "_", pos, "_", "_", str(head), relation, "_", "_"])
    for n, (form, pos, head, relation) in enumerate(
        [
            ("The", "DET", 2, "det"),
            ("capital", "NOUN", 5, "nsubj"),
            ("of", "ADP", 2, "adpmod"),
            ("France", "PROPN", 3, "adpobj"),
            ("is", "AUX", 0, "root"),
        ],
        start=1,
    )
)


def open_syntax(page, conllu: str | None = None) -> None:
    before = counter(page, "syntaxes")
    if conllu is None:
        page.get_by_role("tab", name="Syntax").click()
    else:
        page.locator("[data-testid=syntax] details summary").click()
        page.get_by_test_id("syntax-conllu").fill(conllu)
        page.get_by_test_id("syntax-run").click()
    page.wait_for_function(f"Number(document.body.dataset.syntaxes || 0) > {before}", timeout=300_000)
    assert page.get_by_test_id("error").is_hidden(), page.get_by_test_id("error").inner_text()


def shown_words(page) -> list[tuple[str, str, str, str]]:
    script = (
        "els => els.map(e => [e.querySelector('.syntax-text').textContent, e.dataset.pos, e.dataset.relation, "
        "e.dataset.head])"
    )
    return [tuple(w) for w in page.locator("[data-testid=syntax-word]").evaluate_all(script)]


def check_table(page, body: dict) -> None:
    rows = page.locator("[data-testid=syntax-table] tbody tr").evaluate_all(
        "els => els.map(e => [e.dataset.relation, Number(e.dataset.count), Number(e.dataset.layer), "
        "Number(e.dataset.head), Number(e.dataset.accuracy), Number(e.dataset.offset), Number(e.dataset.baseline)])"
    )
    expected = [[r["relation"], r["count"], r["dependent_to_head"]["layer"], r["dependent_to_head"]["head"],
                 r["dependent_to_head"]["accuracy"], r["baseline"]["offset"], r["baseline"]["accuracy"]]
                for r in [*body["relations"], body["overall"]]]  # fmt: skip
    assert rows == expected


def test_english_parse_table_and_heads(page, server):
    analyze(page, ENGLISH)
    has_spacy = bool(installed_pipelines("en"))
    open_syntax(page)
    if has_spacy:
        body = httpx.post(f"{server}/api/syntax", json={"text": ENGLISH}, timeout=300).json()
        assert page.get_by_test_id("syntax-parser").get_attribute("data-parser") == "spacy"
        # spaCy's parse of the example, written by hand
        assert shown_words(page) == [
            ("The", "DET", "det", "1"), ("capital", "NOUN", "nsubj", "4"), ("of", "ADP", "prep", "1"),
            ("France", "PROPN", "pobj", "2"), ("is", "AUX", "root", ""),
        ]  # fmt: skip
        check_table(page, body)
        page.locator("[data-testid=syntax-word]", has_text="capital").hover()
        hover = page.get_by_test_id("syntax-hover")
        assert hover.get_attribute("data-relation") == "nsubj" and "nsubj of is" in hover.inner_text()
        assert "NOUN" in hover.inner_text() and "dependents: The (det), of (prep)" in hover.inner_text()
        assert page.get_by_test_id("syntax-arcs").evaluate("c => c.width > 0 && c.height > 0")
        screenshot(page, "syntax-english")
    else:
        missing = page.get_by_test_id("syntax-missing")
        assert missing.is_visible() and "pip install 'attnscope[syntax]'" in missing.inner_text()
    # a pasted CoNLL-U parse replaces the parser; its table equals the API's and a row opens its head
    open_syntax(page, ENGLISH_CONLLU)
    body = httpx.post(f"{server}/api/syntax", json={"text": ENGLISH, "conllu": ENGLISH_CONLLU}, timeout=300).json()
    assert page.get_by_test_id("syntax-parser").get_attribute("data-parser") == "conllu"
    assert [w[:3] for w in shown_words(page)][2] == ("of", "ADP", "adpmod")
    check_table(page, body)
    row = page.locator("[data-testid=syntax-table] tbody tr").first
    layer, head = row.get_attribute("data-layer"), row.get_attribute("data-head")
    before = counter(page, "analyses")
    row.click()
    page.wait_for_function(f"Number(document.body.dataset.analyses || 0) > {before}", timeout=300_000)
    assert page.get_by_test_id("layer-select").input_value() == layer
    assert page.get_by_test_id("head-select").input_value() == head


def test_chinese_words_parts_of_speech_and_missing_relations(page, server):
    analyze(page, CHINESE)
    open_syntax(page)
    if installed_pipelines("zh"):
        assert page.get_by_test_id("syntax-parser").get_attribute("data-parser") == "spacy"
        return
    body = httpx.post(f"{server}/api/syntax", json={"text": CHINESE}, timeout=300).json()
    words = shown_words(page)
    assert [w[0] for w in words] == [w["text"] for w in body["words"]]
    assert "".join(w[0] for w in words) == CHINESE  # every character, exactly, in order
    # jieba's tags (its dictionary): 我 r, 爱 v, 中国 ns, 的 uj
    tags = {w[0]: w[1] for w in words}
    assert (tags["我"], tags["爱"], tags["中国"], tags["的"]) == ("r", "v", "ns", "uj")
    missing = page.get_by_test_id("syntax-missing")
    assert missing.is_visible() and "zh_core_web_sm" in missing.inner_text()
    assert page.get_by_test_id("syntax-arcs").count() == 0 and page.get_by_test_id("syntax-table").count() == 0
    page.locator("[data-testid=syntax-word]", has_text="中国").hover()
    assert page.get_by_test_id("syntax-hover").inner_text().startswith("中国: ns")
    screenshot(page, "syntax-chinese")
    # spaCy asked for by name: no Chinese pipeline is installed, so the server refuses and the view says how
    before = counter(page, "syntaxes")
    page.get_by_test_id("syntax-parser-select").select_option("spacy")
    page.wait_for_function(f"Number(document.body.dataset.syntaxes || 0) > {before}", timeout=300_000)
    missing = page.get_by_test_id("syntax-missing")
    assert "pip install 'attnscope[syntax]'" in missing.inner_text() and "Chinese" in missing.inner_text()
    assert page.get_by_test_id("error").is_hidden() and page.get_by_test_id("syntax-word").count() == 0
    before = counter(page, "syntaxes")
    page.get_by_test_id("syntax-parser-select").select_option("auto")
    page.wait_for_function(f"Number(document.body.dataset.syntaxes || 0) > {before}", timeout=300_000)
    assert page.get_by_test_id("syntax-word").count() == len(words)
    page.select_option("[data-testid=language-select]", "zh-CN")
    page.wait_for_function(
        "document.querySelector('[data-testid=syntax-missing]')?.textContent.includes('结巴')", timeout=60_000
    )
    assert page.get_by_role("tab", name="句法").is_visible()
    page.select_option("[data-testid=language-select]", "en")
