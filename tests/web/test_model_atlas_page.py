"""The Model view and the Head atlas in real Chromium: the thumbnails and points show what the API
answers, clicking one opens that layer and head in the Heatmap view, sorting follows the head
metrics, the joint query–key space shows each point's token, and an 8k-token input keeps the DOM
bounded (canvases only)."""

from __future__ import annotations

import json

import httpx
import numpy as np
import pytest

from attnscope.server import binary
from tests.conftest import CHINESE, ENGLISH
from tests.web.conftest import screenshot
from tests.web.test_browser import analyze, counter
from tests.web.test_long_input import dom_size

CANVAS = "document.querySelector('[data-testid=model-canvas]')"
ATLAS = "document.querySelector('[data-testid=atlas-canvas]')"


def model_view(page, server, text: str, *, timeout: int = 300_000) -> tuple[dict, np.ndarray, dict]:
    """Open the Model view; (the API's header, its maps, the canvas' layout) once drawn."""
    page.get_by_role("tab", name="Model view").click()
    page.wait_for_function(f"{CANVAS} && {CANVAS}.dataset.order", timeout=timeout)
    trace_id = httpx.post(f"{server}/api/analyze", json={"text": text}, timeout=600).json()["trace_id"]  # the page's
    layout = page.get_by_test_id("model-canvas").evaluate("c => ({...c.dataset})")
    answer = httpx.get(f"{server}/api/traces/{trace_id}/model-view", params={"size": 32, "pool": "max"}, timeout=600)
    header, values = binary.decode(answer.content)
    return header, values, layout


def thumbnail_point(
    page, layout: dict, index: int, cell: tuple[int, int], cells: tuple[int, int]
) -> tuple[float, float]:
    box = page.get_by_test_id("model-canvas").bounding_box()
    thumb, gap, caption = int(layout["thumb"]), int(layout["gap"]), int(layout["caption"])
    columns = int(layout["columns"])
    x = int(layout["left"]) + (index % columns) * (thumb + gap) + (cell[1] + 0.5) * thumb / cells[1]
    y = int(layout["top"]) + (index // columns) * (thumb + caption + gap) + (cell[0] + 0.5) * thumb / cells[0]
    return box["x"] + x, box["y"] + y


def point_on_screen(page, testid: str, point: list[float]) -> tuple[float, float]:
    canvas = page.get_by_test_id(testid)
    plot = json.loads(canvas.get_attribute("data-plot"))
    box = canvas.bounding_box()
    x = plot["left"] + (point[0] - plot["xmin"]) / (plot["xmax"] - plot["xmin"]) * plot["width"]
    y = plot["top"] + (1 - (point[1] - plot["ymin"]) / (plot["ymax"] - plot["ymin"])) * plot["height"]
    return box["x"] + x, box["y"] + y


def loneliest(points: list[list[float]], page, testid: str) -> int:
    """The point farthest (on screen) from its nearest neighbour: hovering it cannot pick another."""
    screen = np.array([point_on_screen(page, testid, p) for p in points])
    distance = np.linalg.norm(screen[:, None] - screen[None], axis=-1)
    np.fill_diagonal(distance, np.inf)
    return int(distance.min(axis=1).argmax())


def opened_in_heatmap(page, layer: int, head: int, before: int) -> None:
    page.wait_for_function(f"Number(document.body.dataset.analyses || 0) > {before}", timeout=300_000)
    assert page.get_by_role("tab", name="Heatmap").get_attribute("aria-selected") == "true"
    assert page.get_by_test_id("layer-select").input_value() == str(layer)
    assert page.get_by_test_id("head-select").input_value() == str(head)


@pytest.mark.parametrize("text", [ENGLISH, CHINESE], ids=["english", "chinese"])
def test_model_view_shows_every_whole_map_and_opens_a_head(page, server, text):
    analyze(page, text)
    header, values, layout = model_view(page, server, text)
    layers, heads, cells_q, cells_k = values.shape
    assert (layers, heads) == (30, 9) and layout["order"].split(",")[:2] == ["0:0", "0:1"]
    n = len(httpx.post(f"{server}/api/analyze", json={"text": text}, timeout=120).json()["tokens"])
    assert header["factor"] == 1 and cells_q == cells_k == n  # a short text: one cell per token pair
    # hover the strongest cell of layer 1, head 7: the read-out is the API's weight
    index = 1 * heads + 7
    cell = np.unravel_index(values[1, 7].argmax(), values[1, 7].shape)
    page.mouse.move(*thumbnail_point(page, layout, index, cell, (cells_q, cells_k)))
    readout = page.get_by_test_id("model-readout")
    page.wait_for_function("document.querySelector('[data-testid=model-readout]').dataset.layer === '1'")
    assert readout.get_attribute("data-head") == "7"
    assert float(readout.get_attribute("data-value")) == pytest.approx(float(values[1, 7][cell]), abs=1e-6)
    screenshot(page, f"model-view-{'chinese' if text == CHINESE else 'english'}")
    # sorted by entropy (highest first), as POST /api/heads measures it
    page.get_by_test_id("model-sort").select_option("entropy")
    page.wait_for_function(f"{CANVAS}.dataset.sort === 'entropy'", timeout=300_000)
    entropy = np.array(httpx.post(f"{server}/api/heads", json={"text": text}, timeout=300).json()["metrics"]["entropy"])
    order = [
        tuple(map(int, item.split(":")))
        for item in page.get_by_test_id("model-canvas").get_attribute("data-order").split(",")
    ]
    assert len(order) == 270 and [entropy[layer][head] for layer, head in order] == sorted(
        entropy.ravel(), reverse=True
    )
    # click the first thumbnail: its head opens in the heatmap
    layout = page.get_by_test_id("model-canvas").evaluate("c => ({...c.dataset})")
    before = counter(page, "analyses")
    page.mouse.click(*thumbnail_point(page, layout, 0, (0, 0), (cells_q, cells_k)))
    opened_in_heatmap(page, *order[0], before)


@pytest.mark.parametrize("text", [ENGLISH, CHINESE], ids=["english", "chinese"])
def test_head_atlas_points_open_heads_and_the_qk_space_shows_tokens(page, server, text):
    analyze(page, text)
    page.get_by_role("tab", name="Head atlas").click()
    page.wait_for_function(f"{ATLAS} && {ATLAS}.dataset.count === '270'", timeout=300_000)
    body = httpx.post(f"{server}/api/atlas", json={"text": text}, timeout=300).json()
    canvas = page.get_by_test_id("atlas-canvas")
    assert canvas.get_attribute("data-projection") == "pca"
    share = body["projection"]["explained_variance"]
    assert share[0] >= share[1] > 0
    point = loneliest(body["points"], page, "atlas-canvas")
    page.mouse.move(*point_on_screen(page, "atlas-canvas", body["points"][point]))
    readout = page.get_by_test_id("atlas-readout")
    layer, head = body["layers"][point], body["heads"][point]
    assert readout.inner_text().startswith(f"layer {layer}, head {head} · ")
    assert page.get_by_test_id("tooltip").is_visible()
    screenshot(page, f"head-atlas-{'chinese' if text == CHINESE else 'english'}")
    before = counter(page, "analyses")
    page.mouse.click(*point_on_screen(page, "atlas-canvas", body["points"][point]))
    opened_in_heatmap(page, layer, head, before)
    # the joint query–key space of the last layer, every head: hover a point for its token
    page.get_by_role("tab", name="Head atlas").click()
    page.get_by_test_id("atlas-mode").select_option("qk")
    qk = httpx.post(
        f"{server}/api/qk-projection", json={"text": text, "layer": layer, "head": "all"}, timeout=300
    ).json()
    page.wait_for_function(
        f"{ATLAS}.dataset.mode === 'qk' && {ATLAS}.dataset.count === '{len(qk['points'])}'", timeout=300_000
    )
    assert page.get_by_test_id("atlas-layer").input_value() == str(layer)
    assert len(qk["points"]) == 2 * 9 * len(qk["tokens"]) and not qk["subsampled"]
    point = loneliest(qk["points"], page, "atlas-canvas")
    page.mouse.move(*point_on_screen(page, "atlas-canvas", qk["points"][point]))
    chip = page.locator("[data-testid=atlas-readout] .token-chip")
    assert chip.get_attribute("data-text") == qk["tokens"][qk["positions"][point]]
    kind = "query" if qk["kinds"][point] == "q" else "key"
    assert readout.inner_text().startswith(f"{kind} of token {qk['positions'][point]}, head {qk['point_heads'][point]}")
    screenshot(page, f"qk-space-{'chinese' if text == CHINESE else 'english'}")


LONG = " ".join(
    f"Paragraph {i}: the river city traded salt and grain with its neighbours." for i in range(480)
)  # about 8,070 tokens


def test_eight_thousand_tokens_keep_both_views_bounded(page, server):
    before = counter(page, "analyses")
    page.get_by_test_id("prompt-input").fill(LONG)
    page.get_by_test_id("prompt-input").press("Control+Enter")
    page.wait_for_function(f"Number(document.body.dataset.analyses || 0) > {before}", timeout=600_000)
    header, values, _ = model_view(page, server, LONG, timeout=600_000)
    n = header["tokens"][0]
    assert 7500 < n <= 8192 and header["rows_per_block"] == 4 and values.shape[:2] == (30, 9)
    assert values.shape[2] <= 32 and "long input" in page.get_by_test_id("model-note").inner_text()
    assert dom_size(page) <= 2000
    page.get_by_role("tab", name="Head atlas").click()
    page.wait_for_function(f"{ATLAS} && {ATLAS}.dataset.count === '270'", timeout=600_000)
    assert "long input" in page.get_by_test_id("atlas-note").inner_text()
    page.get_by_test_id("atlas-mode").select_option("qk")
    page.wait_for_function(f"{ATLAS}.dataset.mode === 'qk' && Number({ATLAS}.dataset.count) > 40000", timeout=600_000)
    assert "subsampled from" in page.get_by_test_id("atlas-note").inner_text()
    assert dom_size(page) <= 2000
    screenshot(page, "long-qk-space")
