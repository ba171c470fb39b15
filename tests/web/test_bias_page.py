"""The Bias view in real Chromium with a packaged model: a suite run from the page shows the numbers
POST /api/bias answered (the summary with its intervals, the per-pair table), draws the per-pair bars
with the means' intervals and the head × layer map, reads them out on hover, switches the page's head
from the top heads, shows Chinese suite text exactly, and is kept as a run History opens."""

from __future__ import annotations

import pytest

from tests.web.conftest import screenshot
from tests.web.test_browser import counter

RESAMPLES = 200  # the page's requests: a few, for speed (the numbers are compared with the API's own)

# non-white pixels of a canvas, read back from the page
INKED = """canvas => {
  const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  let inked = 0;
  for (let i = 0; i < data.length; i += 4) if (data[i] < 250 || data[i + 1] < 250 || data[i + 2] < 250) inked += 1;
  return inked;
}"""


def run_suite(page, suite: str) -> dict:
    """Run ``suite`` from the Bias view; the answer the page received from POST /api/bias."""
    page.get_by_role("tab", name="Bias").click()
    page.wait_for_function("Number(document.body.dataset.biasSuites || 0) > 0")
    page.get_by_test_id("bias-suite").select_option(suite)
    page.get_by_test_id("bias-resamples").fill(str(RESAMPLES))
    before = counter(page, "biasRuns")
    with page.expect_response("**/api/bias", timeout=600_000) as response:
        page.get_by_test_id("bias-run").click()
    page.wait_for_function(f"Number(document.body.dataset.biasRuns || 0) > {before}", timeout=600_000)
    assert response.value.status == 200, response.value.text()
    assert not page.get_by_test_id("error").is_visible(), page.get_by_test_id("error").inner_text()
    return response.value.json()


def rows(page, selector: str, *keys: str) -> list[tuple[str, ...]]:
    script = "els => els.map(e => [" + ", ".join(f"e.dataset.{key}" for key in keys) + "])"
    return [tuple(row) for row in page.locator(selector).evaluate_all(script)]


def expected_rows(summary: dict) -> dict[str, dict]:
    found = {key: summary["gap"][key.split(".")[1]] for key in ("gap.logprob", "gap.prob", "gap.share")}
    found |= {"prob.first": summary["prob"]["first"], "prob.second": summary["prob"]["second"]}
    found["prefers_first"] = summary["prefers_first"]
    for tag, group in summary["by_tag"].items():
        found |= {
            f"by_tag.{tag}.gap.logprob": group["gap"]["logprob"],
            f"by_tag.{tag}.gap.share": group["gap"]["share"],
        }
    return found


def check_against_api(page, body: dict, scope: str = "[data-testid=bias-result]") -> None:
    shown = rows(page, f"{scope} [data-testid=bias-summary] tbody tr", "key", "mean", "low", "high", "n")
    expected = expected_rows(body["summary"])
    assert [key for key, *_ in shown] == list(expected)
    for key, mean, low, high, n in shown:
        value = expected[key]
        assert [float(mean), float(low), float(high)] == pytest.approx(
            [value["mean"], value["low"], value["high"]], abs=1e-9
        )
        assert int(n) == value["n"]
    line = page.locator(f"{scope} [data-testid=bias-summary-line]").inner_text()
    first, second = body["summary"]["order"]
    assert f"{body['summary']['pairs']} pairs · gap = {first} − {second}" in line and f"{RESAMPLES} resamples" in line


def check_charts(page, body: dict) -> None:
    gaps = page.get_by_test_id("bias-gaps")
    assert int(gaps.get_attribute("data-bars")) == len(body["pairs"])
    assert int(gaps.get_attribute("data-means")) == 1 + len(body["summary"]["by_tag"])
    assert gaps.evaluate(INKED) > 5000
    heads = page.get_by_test_id("bias-heads")
    role = next(iter(body["summary"]["heads"]))
    difference = body["summary"]["heads"][role]["mean_difference"]
    assert (int(heads.get_attribute("data-layers")), int(heads.get_attribute("data-heads"))) == (
        len(difference),
        len(difference[0]),
    )
    # one pixel per cell: white at 0, the diverging colour at ±max|Δ| (a cell below ~2% of it stays white)
    top_abs = max(abs(v) for row in difference for v in row)
    share = [abs(v) / top_abs for row in difference for v in row]
    assert sum(s > 0.03 for s in share) <= heads.evaluate(INKED) <= sum(s > 0.015 for s in share)
    strongest = max(body["summary"]["heads"][role]["top"], key=lambda h: abs(h["mean"]))
    row = body["summary"]["heads"][role]["layers"].index(strongest["layer"])
    pixel = heads.evaluate(f"c => [...c.getContext('2d').getImageData({strongest['head']}, {row}, 1, 1).data]")
    assert pixel[:3] == ([220, 38, 38] if strongest["mean"] > 0 else [13, 148, 136])  # palette.json's diverging
    top = rows(page, "[data-testid=bias-top-heads] tbody tr", "layer", "head", "mean", "low", "high", "excludesZero")
    expected = body["summary"]["heads"][role]["top"]
    assert [(int(layer), int(head)) for layer, head, *_ in top] == [(h["layer"], h["head"]) for h in expected]
    assert [float(row[2]) for row in top] == pytest.approx([h["mean"] for h in expected], abs=1e-9)
    assert [row[5] == "true" for row in top] == [h["excludes_zero"] for h in expected]


def hover_bar(page, k: int) -> None:
    gaps = page.get_by_test_id("bias-gaps")
    gaps.scroll_into_view_if_needed()
    box = gaps.bounding_box()  # in the viewport, where the mouse moves
    left, pitch = float(gaps.get_attribute("data-left")), float(gaps.get_attribute("data-pitch"))
    page.mouse.move(box["x"] + left + (k + 0.5) * pitch, box["y"] + 60)


def test_the_english_suite_shows_the_apis_numbers_and_charts(page, server):
    body = run_suite(page, "gender-occupation-en")
    check_against_api(page, body)
    check_charts(page, body)
    # the per-pair table: every pair's gap and both probabilities
    pairs = rows(page, "[data-testid=bias-pairs] tbody tr", "id", "gap", "first", "second")
    assert [p[0] for p in pairs] == [p["id"] for p in body["pairs"]]
    assert [float(p[1]) for p in pairs] == pytest.approx([p["gap"]["logprob"] for p in body["pairs"]], abs=1e-9)
    assert [float(p[2]) for p in pairs] == pytest.approx([p["variants"][0]["prob"] for p in body["pairs"]], abs=1e-9)
    # hovering a pair's bar and the overall mean's bar reads them out, the full template in the tooltip
    hover_bar(page, 2)
    readout = page.get_by_test_id("bias-gaps-readout")
    assert readout.get_attribute("data-kind") == "pair" and readout.get_attribute("data-index") == "2"
    assert float(readout.get_attribute("data-value")) == pytest.approx(body["pairs"][2]["gap"]["logprob"], abs=1e-9)
    assert body["pairs"][2]["template"] in page.get_by_test_id("tooltip").inner_text()
    hover_bar(page, len(body["pairs"]) + 1)
    assert readout.get_attribute("data-kind") == "mean"
    assert float(readout.get_attribute("data-value")) == pytest.approx(body["summary"]["gap"]["logprob"]["mean"])
    # hovering a cell of the map reads out its layer, head and value
    heads = page.get_by_test_id("bias-heads")
    difference = body["summary"]["heads"]["occupation"]["mean_difference"]
    heads.scroll_into_view_if_needed()
    box = heads.bounding_box()
    layer, head = len(difference) - 2, 1
    page.mouse.move(
        box["x"] + (head + 0.5) * box["width"] / len(difference[0]),
        box["y"] + (layer + 0.5) * box["height"] / len(difference),
    )
    cell = page.get_by_test_id("bias-heads-readout")
    assert (cell.get_attribute("data-layer"), cell.get_attribute("data-head")) == (str(layer), str(head))
    assert float(cell.get_attribute("data-value")) == pytest.approx(difference[layer][head], abs=1e-9)
    page.get_by_test_id("bias-pairs").locator("summary").click()
    screenshot(page, "bias-english")
    # a top head becomes the page's layer and head (the views analyse the prompt with it)
    row = page.locator("[data-testid=bias-top-heads] tbody tr").first
    layer_shown, head_shown = row.get_attribute("data-layer"), row.get_attribute("data-head")
    before = counter(page, "analyses")
    row.click()
    page.wait_for_function(f"Number(document.body.dataset.analyses || 0) > {before}")
    assert page.get_by_test_id("layer-select").input_value() == layer_shown
    assert page.get_by_test_id("head-select").input_value() == head_shown
    # the run is kept: History lists it with its summary line and opens its summary table
    page.click("[data-testid=history-button]")
    page.select_option("[data-testid=history-kind]", "bias")
    before = counter(page, "historySearches")
    page.click("[data-testid=history-search]")
    page.wait_for_function(f"Number(document.body.dataset.historySearches || 0) > {before}")
    item = page.locator(f"[data-testid=run-item][data-run-id='{body['run_id']}']")
    assert item.get_attribute("data-kind") == "bias"
    assert "gender-occupation-en: 32 pairs, gap log p" in item.inner_text()
    before = counter(page, "runOpens")
    item.locator("[data-testid=run-open]").click()
    page.wait_for_function(f"Number(document.body.dataset.runOpens || 0) > {before}")
    check_against_api(page, body, "[data-testid=stored-run]")


def test_the_chinese_suite_shows_its_text_exactly(page, server):
    body = run_suite(page, "gender-occupation-zh")
    description = page.get_by_test_id("bias-suite-description").inner_text()
    assert description == body["suite"]["description"] and "她" in description
    assert body["suite"]["licence"] in page.get_by_test_id("bias-suite-source").inner_text()
    check_against_api(page, body)
    check_charts(page, body)
    page.get_by_test_id("bias-pairs").locator("summary").click()
    templates = page.locator("[data-testid=bias-pairs] tbody tr td:nth-child(2)").all_inner_texts()
    assert templates == [p["template"] for p in body["pairs"]] and templates[0] == "这位护士说，"
    continuations = page.locator("[data-testid=bias-pairs] tbody tr td:nth-child(4) code").evaluate_all(
        "els => els.map(e => e.dataset.text)"
    )
    assert continuations == [p["variants"][0]["continuation"] for p in body["pairs"]] == ["她"] * len(body["pairs"])
    hover_bar(page, 0)
    assert "这位护士说，" in page.get_by_test_id("tooltip").inner_text()
    screenshot(page, "bias-chinese")
