"""The Corpus view in real Chromium, on a real ``attnscope serve --atlas``: atlases the real
``attnscope batch`` wrote (tiny:llama, runs stored) and two hand-written ones. The grid, its colour bar,
a head's histogram and unusual prompts show what the API answers (the API's numbers are checked against
numpy in tests/server/test_corpus_api.py and tests/batch/test_reading.py); clicking a prompt opens its
stored run in History, or, without one, analyses its text on the atlas's model — and refuses to when
the loaded model is not the atlas's. Chinese prompts display exactly; both languages."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.batch.atlas_files import CORPUS, run_batch, write_atlas
from tests.server.test_load import free_port
from tests.web.conftest import screenshot, serving
from tests.web.test_browser import counter

CELL = 18  # views/corpus.js: CSS pixels per head


@pytest.fixture(scope="module")
def corpus_server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("corpus")
    real = run_batch(folder, "--store")  # folder/atlas
    model = json.loads((real / "atlas.json").read_text("utf-8"))["model"]
    write_atlas(folder / "fresh", prompts=6, layers=3, heads=4, spec="tiny:llama", fingerprint=model["fingerprint"])
    write_atlas(
        folder / "stranger", prompts=6, layers=3, heads=4, spec="tiny:llama", fingerprint="0" * 20, complete=False
    )
    port = free_port()
    argv = ["-m", "attnscope", "serve", "--model", "tiny:llama", "--port", str(port), "--quiet"]
    for name in ("atlas", "fresh", "stranger"):
        argv += ["--atlas", str(folder / name)]
    with serving(argv, port) as base:
        yield base


def wait_count(page, name: str, before: int) -> None:
    page.wait_for_function(f"Number(document.body.dataset.{name} || 0) > {before}", timeout=120_000)


def open_view(page, title: str = "Corpus") -> None:
    before = counter(page, "corpusGrids")
    page.get_by_role("tab", name=title).click()
    wait_count(page, "corpusGrids", before)


def choose_atlas(page, name: str) -> None:
    before = counter(page, "corpusGrids")
    page.select_option("[data-testid=corpus-atlas]", name)
    wait_count(page, "corpusGrids", before)


def click_head(page, layer: int, head: int) -> None:
    box = page.get_by_test_id("corpus-canvas").bounding_box()
    before = counter(page, "corpusHeads")
    page.mouse.click(box["x"] + (head + 0.5) * CELL, box["y"] + (layer + 0.5) * CELL)
    wait_count(page, "corpusHeads", before)


def shown_prompts(page) -> list[dict]:
    return page.locator("[data-testid=corpus-prompt]").evaluate_all(
        "n => n.map(e => ({index: Number(e.dataset.index), z: Number(e.dataset.z), runId: e.dataset.runId,"
        " text: e.querySelector('[data-testid=corpus-text]').textContent}))"
    )


@pytest.fixture
def corpus_page(browser, corpus_server):
    context = browser.new_context(viewport={"width": 1280, "height": 1000}, locale="en-US")
    page = context.new_page()
    page.goto(corpus_server)
    page.wait_for_selector("body[data-ready='1']")
    yield page
    context.close()


def test_the_grid_a_head_and_its_unusual_prompts_then_the_stored_run(corpus_page, corpus_server):
    page = corpus_page
    open_view(page)  # no analysis needed
    api = httpx.get(f"{corpus_server}/api/corpus/atlas", timeout=60).json()
    means = [v for row in api["grid"]["entropy"]["mean"] for v in row]
    ticks = page.locator("[data-testid=corpus-key] [data-testid=colour-bar] .tick").evaluate_all(
        "n => n.map(e => Number(e.dataset.value))"
    )
    assert ticks == pytest.approx([min(means), max(means)])
    assert page.get_by_test_id("corpus-canvas").evaluate("c => [c.dataset.layers, c.dataset.heads]") == ["3", "4"]
    assert "8 prompts · shards: 3" in page.get_by_test_id("corpus-facts").inner_text()

    page.select_option("[data-testid=corpus-metric]", "sink")
    click_head(page, 2, 1)
    head = httpx.get(
        f"{corpus_server}/api/corpus/atlas/heads/2/1", params={"metric": "sink", "top": 12}, timeout=60
    ).json()
    histogram = page.get_by_test_id("corpus-histogram")
    assert json.loads(histogram.get_attribute("data-counts")) == head["distribution"]["histogram"]["counts"]
    assert json.loads(histogram.get_attribute("data-quantiles"))["p50"] == pytest.approx(head["distribution"]["p50"])
    assert (
        "Layer 2, head 1: sink mass (first token) over 8 prompts"
        in page.get_by_test_id("corpus-head-title").inner_text()
    )
    shown = shown_prompts(page)
    assert [p["index"] for p in shown] == [p["prompt_index"] for p in head["unusual"]]
    assert [p["z"] for p in shown] == pytest.approx([p["z"] for p in head["unusual"]])
    assert [p["text"] for p in shown] == [CORPUS[p["index"]] for p in shown]  # 我爱中国，他的首都在于 exactly
    assert "1.4826 × MAD" in page.locator("[data-testid=corpus] .legend").nth(1).inner_text()
    screenshot(page, "corpus-view")

    chinese = next(p for p in shown if p["index"] == 1)
    before = counter(page, "runOpens")
    page.locator("[data-testid=corpus-prompt][data-index='1'] [data-testid=corpus-open]").click()
    wait_count(page, "runOpens", before)
    assert page.get_by_test_id("history").is_visible()
    assert page.get_by_test_id("stored-run").get_attribute("data-run-id") == chinese["runId"]
    assert page.get_by_test_id("corpus-prompt-text").inner_text() == CORPUS[1]
    stored = page.locator("[data-testid=stored-token]").evaluate_all("n => n.map(e => e.textContent).join('')")
    assert all(ch in stored for ch in "我爱中国他的首都在于")
    assert "Stored run" in page.get_by_test_id("corpus-note").inner_text()


def test_a_prompt_without_a_run_is_analysed_on_the_atlas_model_and_never_on_another(corpus_page):
    page = corpus_page
    open_view(page)
    choose_atlas(page, "fresh")
    click_head(page, 1, 2)
    first = shown_prompts(page)[0]  # the planted outlier of atlas_files.write_atlas
    assert first["index"] == 3 and first["runId"] == ""
    before = counter(page, "analyses")
    page.locator("[data-testid=corpus-prompt][data-index='3'] [data-testid=corpus-open]").click()
    wait_count(page, "analyses", before)
    assert page.get_by_test_id("prompt-input").input_value() == first["text"]
    assert page.locator("#tab-tokens").get_attribute("aria-selected") == "true"
    assert page.get_by_test_id("error").is_hidden()

    page.get_by_role("tab", name="Corpus").click()
    choose_atlas(page, "stranger")  # tiny:llama by name, another fingerprint; a run not finished yet
    assert "PARTIAL: the run has not finished" in page.get_by_test_id("corpus-facts").inner_text()
    click_head(page, 0, 0)
    assert "(partial atlas: computed from the shards written so far" in page.get_by_test_id("corpus-stats").inner_text()
    analyses, prompts = counter(page, "analyses"), counter(page, "corpusPrompts")
    page.locator("[data-testid=corpus-open]").first.click()
    wait_count(page, "corpusPrompts", prompts)
    assert "Not analysed: the loaded tiny:llama is not the model" in page.get_by_test_id("corpus-note").inner_text()
    assert counter(page, "analyses") == analyses


def test_the_view_in_chinese_and_after_a_language_switch(browser, corpus_server):
    context = browser.new_context(viewport={"width": 1280, "height": 1000}, locale="zh-CN")
    page = context.new_page()
    try:
        page.goto(corpus_server)
        page.wait_for_selector("body[data-ready='1']")
        open_view(page, "语料")
        assert "8 条提示，3 个分片" in page.get_by_test_id("corpus-facts").inner_text()
        click_head(page, 1, 2)
        title = page.get_by_test_id("corpus-head-title").inner_text()
        assert title.startswith("第 1 层，第 2 个注意力头：8 条提示上的熵")
        texts = [p["text"] for p in shown_prompts(page)]
        assert "我爱中国，他的首都在于" in texts and "水是由氢和氧组成的" in texts
        counts = page.get_by_test_id("corpus-histogram").get_attribute("data-counts")
        screenshot(page, "corpus-view-zh")
        before = counter(page, "languages")
        page.select_option("[data-testid=language-select]", "en")
        wait_count(page, "languages", before)
        assert (
            page.get_by_test_id("corpus-head-title").inner_text().startswith("Layer 1, head 2: entropy (nats) over 8")
        )
        assert page.get_by_test_id("corpus-histogram").get_attribute("data-counts") == counts  # the numbers stay
        assert "我爱中国，他的首都在于" in [p["text"] for p in shown_prompts(page)]
    finally:
        context.close()


def test_a_server_without_atlases_says_how_to_make_one(page):
    page.get_by_role("tab", name="Corpus").click()
    page.wait_for_function("Number(document.body.dataset.corpusLists || 0) > 0")
    assert page.get_by_test_id("corpus-empty").is_visible()
    assert "attnscope serve --atlas ATLAS/" in page.get_by_test_id("corpus-empty").inner_text()
    assert page.get_by_test_id("corpus-canvas").is_hidden() and page.get_by_test_id("error").is_hidden()
