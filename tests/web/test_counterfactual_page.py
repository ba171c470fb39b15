"""The Counterfactual view in real Chromium: an edit of the analysed text run from the page shows the
numbers POST /api/counterfactual answers (predictions, the aligned rows' differences, the heads, the
attribution shift), draws the difference map, switches the page's head from the heads table, and is
kept as a run the History page lists and opens."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import CHINESE, ENGLISH
from tests.web.conftest import screenshot
from tests.web.test_browser import analyze, counter


def run_edit(page, kind: str, old: str = "", new: str = "", *, occurrence: str = "all", refused: bool = False) -> None:
    page.get_by_role("tab", name="Counterfactual").click()
    page.get_by_test_id("counterfactual-kind").select_option(kind)
    if kind != "swap":  # a swap has no occurrence (every term of the table)
        page.get_by_test_id("counterfactual-occurrence").select_option(occurrence)
    if old:
        page.get_by_test_id("counterfactual-old").fill(old)
    if new:
        page.get_by_test_id("counterfactual-new").fill(new)
    before = counter(page, "counterfactuals")
    page.get_by_test_id("counterfactual-run").click()
    page.wait_for_function(f"Number(document.body.dataset.counterfactuals || 0) > {before}", timeout=300_000)
    assert page.get_by_test_id("error").is_visible() == refused, page.get_by_test_id("error").inner_text()


def data(page, selector: str, *keys: str) -> list[tuple[str, ...]]:
    script = "els => els.map(e => [" + ", ".join(f"e.dataset.{key}" for key in keys) + "])"
    return [tuple(row) for row in page.locator(selector).evaluate_all(script)]


def api_answer(page, server: str, text: str, edits: list[dict]) -> dict:
    layer = int(page.get_by_test_id("layer-select").input_value())
    response = httpx.post(
        f"{server}/api/counterfactual", json={"text": text, "edits": edits, "layer": layer, "head": "mean"}, timeout=300
    )
    assert response.status_code == 200, response.text
    return response.json()


def check_against_api(page, body: dict) -> None:
    # both texts exactly, the changes marked
    assert page.get_by_test_id("counterfactual-original-text").inner_text() == body["original"]["text"]
    assert page.get_by_test_id("counterfactual-edited-text").inner_text() == body["counterfactual"]["text"]
    marks = page.locator("[data-testid=counterfactual-edited-text] mark").all_inner_texts()
    assert marks == [change["new"] for change in body["changes"]]
    # predictions and the cross probabilities
    for side in ("original", "counterfactual"):
        shown = data(page, f"[data-testid=counterfactual-top-{side}] li", "token", "prob")
        top = body[side]["prediction"]["top"]
        assert [token for token, _ in shown] == [c["token"] for c in top]
        assert [float(p) for _, p in shown] == pytest.approx([c["prob"] for c in top], abs=1e-6)
    cross = body["prediction"]
    for testid, key in (
        ("counterfactual-cross-original", "counterfactual_top_in_original"),
        ("counterfactual-cross-counterfactual", "original_top_in_counterfactual"),
    ):
        (token, prob), *_ = data(page, f"[data-testid={testid}]", "token", "prob")
        assert token == cross[key]["token"] and float(prob) == pytest.approx(cross[key]["prob"], abs=1e-6)
    # the aligned rows: every matched token's shift, and the weights of both sides
    columns = data(page, "[data-testid=counterfactual-column]", "original", "counterfactual", "shift")
    shifts = {int(i): float(s) for i, _, s in columns if s is not None}
    expected = {m["original"]: m["shift"] for m in body["attention"]["matched"]}
    assert shifts == pytest.approx(expected, abs=1e-6)
    paired = [(int(i), int(j)) for i, j, s in columns if s is not None]
    assert paired == [tuple(pair) for pair in body["alignment"]["pairs"]]
    for index, side in ((0, "only_original"), (1, "only_counterfactual")):  # zipped between the same pairs
        alone = [int(c[index]) for c in columns if c[2] is None and c[index] != "null"]
        assert alone == body["alignment"][side]
    # heads and attribution
    heads = data(page, "[data-testid=counterfactual-heads] tbody tr", "layer", "head", "tvd")
    assert [(int(layer), int(h)) for layer, h, _ in heads] == [(h["layer"], h["head"]) for h in body["heads"]["top"]]
    assert [float(t) for *_, t in heads] == pytest.approx([h["tvd"] for h in body["heads"]["top"]], abs=1e-6)
    attribution = page.get_by_test_id("counterfactual-attribution")
    assert float(attribution.get_attribute("data-spearman")) == pytest.approx(body["attribution"]["spearman"], abs=1e-6)
    scores = data(page, "[data-testid=counterfactual-attribution] tbody tr", "original", "shift")
    expected_scores = {m["original"]: m["shift"] for m in body["attribution"]["matched"]}
    assert {int(i): float(s) for i, s in scores} == pytest.approx(expected_scores, abs=1e-6)
    # the map: drawn (cells off white), with the answer's scale
    canvas = page.get_by_test_id("counterfactual-map-canvas")
    assert float(canvas.get_attribute("data-max-abs")) == pytest.approx(body["difference"]["max_abs"], abs=1e-9)
    coloured = canvas.evaluate(
        """c => { const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data; let n = 0;
          for (let k = 0; k < d.length; k += 4) if (d[k] < 250 || d[k + 1] < 250 || d[k + 2] < 250) n++; return n; }"""
    )
    assert coloured > 0 and int(canvas.get_attribute("data-size")) == len(body["difference"]["map"])


@pytest.mark.parametrize(
    ("text", "old", "new", "name"),
    [(ENGLISH, "France", "Germany", "counterfactual-english"), (CHINESE, "他", "她", "counterfactual-chinese")],
)
def test_a_replace_shows_the_apis_numbers(page, server, text, old, new, name):
    analyze(page, text)
    run_edit(page, "replace", old, new)
    body = api_answer(page, server, text, [{"replace": old, "with": new, "occurrence": "all"}])
    check_against_api(page, body)
    labels = page.locator("[data-testid=counterfactual-map] .tick.y").all_inner_texts()
    assert len(labels) == len(body["difference"]["tokens"])  # short texts: every row labelled with its token
    screenshot(page, name)


def test_a_long_text_shows_the_tokens_that_changed_most_and_a_pooled_map(page, server):
    text = "The capital of France is Paris. " * 80 + "The capital of France is"
    analyze(page, text)
    run_edit(page, "replace", "France", "Germany", occurrence="first")
    run_id = page.get_by_test_id("counterfactual-result").get_attribute("data-run-id")
    body = httpx.get(f"{server}/api/runs/{run_id}", timeout=60).json()["answer"]  # the answer the page was given
    assert body["changes"][0]["start"] == text.index("France")
    rows = page.get_by_test_id("counterfactual-rows")
    columns = data(page, "[data-testid=counterfactual-column]", "original", "shift")
    assert len(columns) == 200 < int(rows.get_attribute("data-total"))
    assert "Showing" in rows.inner_text()
    shifts = {int(i): float(s) for i, s in columns if s is not None}
    matched = sorted(body["attention"]["matched"], key=lambda m: -abs(m["shift"]))
    assert set(shifts) == {m["original"] for m in matched[: len(shifts)]}  # the largest changes
    assert shifts == pytest.approx({m["original"]: m["shift"] for m in matched if m["original"] in shifts}, abs=1e-6)
    n = len(body["difference"]["map"])
    canvas = page.get_by_test_id("counterfactual-map-canvas")
    factor = int(canvas.get_attribute("data-factor"))
    assert n > 512 and factor == -(-n // 512) and int(canvas.get_attribute("data-size")) == -(-n // factor) <= 512
    screenshot(page, "counterfactual-long")


def test_a_head_from_the_table_becomes_the_pages_head(page, server):
    analyze(page, ENGLISH)
    run_edit(page, "swap", refused=True)  # no gender term in the text: refused in one line
    assert "no term of the gender swap table" in page.get_by_test_id("error").inner_text()
    run_edit(page, "replace", "capital", "largest city")
    row = page.locator("[data-testid=counterfactual-heads] tbody tr").nth(1)
    layer, head = row.get_attribute("data-layer"), row.get_attribute("data-head")
    before = counter(page, "analyses")
    row.click()
    page.wait_for_function(f"Number(document.body.dataset.analyses || 0) > {before}")
    assert page.get_by_test_id("layer-select").input_value() == layer
    assert page.get_by_test_id("head-select").input_value() == head


def test_the_run_is_listed_and_opened_in_the_history(page, server):
    text = f"{CHINESE}（反事实）"
    analyze(page, text)
    run_edit(page, "replace", "他", "她")
    page.click("[data-testid=history-button]")
    page.select_option("[data-testid=history-kind]", "counterfactual")
    page.fill("[data-testid=history-text]", "（反事实）")
    before = counter(page, "historySearches")
    page.click("[data-testid=history-search]")
    page.wait_for_function(f"Number(document.body.dataset.historySearches || 0) > {before}")
    item = page.locator("[data-testid=run-item][data-kind=counterfactual]").first
    assert "replace '他' → '她'" in item.inner_text()
    before = counter(page, "runOpens")
    item.locator("[data-testid=run-open]").click()
    page.wait_for_function(f"Number(document.body.dataset.runOpens || 0) > {before}")
    assert page.locator("[data-testid=stored-text]").all_inner_texts() == [text, text.replace("他", "她")]
    assert page.locator("[data-testid=stored-candidates]").count() == 2
