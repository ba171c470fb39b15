"""The Graph and Flow views in real Chromium: the nodes, edges and shares the page draws equal the API's
answer and an independent eager ``transformers`` computation; tokens are labelled exactly (Chinese
too); an 8k-token input keeps the DOM bounded."""

from __future__ import annotations

import json

import httpx
import numpy as np
import pytest
import torch

from attnscope.render.palette import fmt, fmt_prob
from tests.conftest import CHINESE, ENGLISH
from tests.test_real_models import reference_gguf
from tests.web.conftest import SERVED_MODEL, screenshot
from tests.web.test_browser import analyze, counter
from tests.web.test_long_input import dom_size

TOLERANCE = 1e-4  # the page's trace (fp32, recomputed from q/k) vs the eager forward


def eager_maps(text: str) -> np.ndarray:
    """(layers, heads, query, key) float64 attention of the served model, eager, without attnscope."""
    model, tokenizer = reference_gguf(SERVED_MODEL)
    ids = tokenizer(text, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        out = model(input_ids=ids, output_attentions=True)
    return np.stack([a[0].double().numpy() for a in out.attentions])


def open_view(page, name: str, counter_name: str) -> None:
    before = counter(page, counter_name)
    page.get_by_role("tab", name=name, exact=True).click()
    page.wait_for_function(f"Number(document.body.dataset.{counter_name} || 0) > {before}", timeout=300_000)


def change(page, testid: str, value: str, counter_name: str, drawn: str | None = None) -> None:
    """Set a control and wait for the view to count a drawing (and, given ``drawn``, for that JS
    condition: the drawing of this value, not of a change event the focus moving away fired)."""
    before = counter(page, counter_name)
    page.get_by_test_id(testid).fill(value)
    page.get_by_test_id(testid).dispatch_event("change")
    page.wait_for_function(f"Number(document.body.dataset.{counter_name} || 0) > {before}", timeout=300_000)
    if drawn:
        page.wait_for_function(drawn, timeout=300_000)


def graph_drawn(threshold: str, max_edges: str = "300") -> str:
    return (
        "(() => { const s = document.querySelector('[data-testid=graph-count]').dataset;"
        f" return Number(s.threshold) === {threshold} && Number(s.maxEdges) === {max_edges}; }})()"
    )


def sankey_drawn(tokens: str) -> str:
    return f"(document.querySelector('[data-testid=sankey-canvas]').dataset.address || '').includes('tokens={tokens}')"


def drawn_nodes(page) -> list[dict]:
    return json.loads(page.get_by_test_id("graph-canvas").get_attribute("data-nodes"))


def analysis(server: str, text: str) -> dict:
    return httpx.post(f"{server}/api/analyze", json={"text": text}, timeout=600).json()


def test_graph_and_flow_of_the_english_example(page, server):
    analyze(page, ENGLISH)
    open_view(page, "Graph", "graphs")
    result = analysis(server, ENGLISH)
    maps = eager_maps(ENGLISH)
    layer = len(maps) - 1
    weights = maps[layer].mean(axis=0)  # the page's default: last layer, mean of heads
    api = httpx.get(f"{server}/api/traces/{result['trace_id']}/graph?layer={layer}&head=mean&threshold=0.1").json()
    # the nodes drawn: the queries and keys of the eager edges over 0.1 (pairs at the threshold left out)
    nodes = drawn_nodes(page)
    unsure = {(q, k) for q, k in zip(*np.nonzero(np.abs(weights - 0.1) < TOLERANCE), strict=True)}
    expected = {(q, k) for q, k in zip(*np.nonzero(weights >= 0.1), strict=True)} - unsure
    queries = {n["index"] for n in nodes if n["side"] == "q"}
    keys = {n["index"] for n in nodes if n["side"] == "k"}
    assert {q for q, _ in expected} <= queries and {k for _, k in expected} <= keys
    assert queries == {e["query"] for e in api["edges"]} and keys == {e["key"] for e in api["edges"]}
    assert all(n["text"] == result["tokens"][n["index"]]["text"] for n in nodes)
    assert all(n["labelled"] for n in nodes)
    status = page.get_by_test_id("graph-count")
    assert int(status.get_attribute("data-shown")) == api["shown"] == len(api["edges"])
    assert int(status.get_attribute("data-above")) == api["above_threshold"]
    assert f"{api['shown']} of {api['above_threshold']} edges" in status.inner_text()
    legend = page.get_by_test_id("graph-legend")
    assert fmt(max(e["weight"] for e in api["edges"])) in legend.inner_text()
    # hover the last query: its edges, their weights with 3 significant digits and as %
    last = max((n for n in nodes if n["side"] == "q"), key=lambda n: n["index"])
    box = page.get_by_test_id("graph-canvas").bounding_box()
    page.mouse.move(box["x"] + last["x"] - 20, box["y"] + last["y"])
    page.wait_for_function(f"document.querySelector('[data-testid=graph-readout]').dataset.index === '{last['index']}'")
    rows = page.locator("[data-testid=graph-readout] li[data-weight]")
    shown = rows.evaluate_all("els => els.map(e => [Number(e.dataset.other), Number(e.dataset.weight), e.textContent])")
    mine = [e for e in api["edges"] if e["query"] == last["index"]]
    assert [(o, pytest.approx(w, abs=1e-9)) for o, w, _ in shown] == [(e["key"], e["weight"]) for e in mine][:10]
    for other, weight, text in shown:
        assert weights[last["index"], other] == pytest.approx(weight, abs=TOLERANCE)
        assert text.endswith(f"{fmt(weight)} ({fmt_prob(weight)})")
    screenshot(page, "graph-english-columns")
    # a higher threshold, the force layout, and a refused threshold that leaves the graph as it was
    change(page, "graph-threshold", "0.3", "graphs", graph_drawn("0.3"))
    assert int(status.get_attribute("data-above")) == int((weights >= 0.3).sum())
    before = counter(page, "graphs")
    page.get_by_test_id("graph-layout").select_option("force")
    page.wait_for_function(f"Number(document.body.dataset.graphs || 0) > {before}")
    force = drawn_nodes(page)
    assert page.get_by_test_id("graph-canvas").get_attribute("data-layout") == "force"
    assert len({n["index"] for n in force}) == len(force)  # one node per token
    screenshot(page, "graph-english-force")
    change(page, "graph-threshold", "1.5", "graphs")
    assert page.get_by_test_id("graph-error").is_visible()
    assert "less than or equal to 1" in page.get_by_test_id("graph-error").inner_text()
    assert drawn_nodes(page) == force

    # the flow Sankey: the shares at the input are the hand rollout of the eager maps
    open_view(page, "Flow", "sankeys")
    share = np.zeros(weights.shape[0])
    share[-1] = 1.0
    for layer_maps in maps[::-1]:
        mixed = 0.5 * np.eye(len(share)) + 0.5 * layer_maps.mean(axis=0)
        share = share @ (mixed / mixed.sum(axis=1, keepdims=True))
    items = page.locator("[data-testid=sankey-tokens-legend] li[data-index]")
    legend_rows = items.evaluate_all(
        "els => els.map(e => [Number(e.dataset.index), e.dataset.text, Number(e.dataset.share)])"
    )
    top = sorted(range(len(share)), key=lambda i: -share[i])[:5]
    assert [i for i, _, _ in legend_rows] == sorted({len(share) - 1, *top})
    for index, text, value in legend_rows:
        assert text == result["tokens"][index]["text"]
        assert value == pytest.approx(share[index], abs=TOLERANCE)
    assert "Paris" in page.get_by_test_id("sankey-summary").inner_text()
    change(page, "sankey-tokens", "1", "sankeys", sankey_drawn("1"))
    assert 1 in items.evaluate_all("els => els.map(e => Number(e.dataset.index))")
    screenshot(page, "flow-sankey-english")


def test_chinese_nodes_carry_the_exact_token_texts(page, server):
    analyze(page, CHINESE)
    open_view(page, "Graph", "graphs")
    change(page, "graph-threshold", "0", "graphs", graph_drawn("0"))  # every token with attention > 0: all of them
    tokens = analysis(server, CHINESE)["tokens"]
    nodes = drawn_nodes(page)
    assert {n["index"] for n in nodes if n["side"] == "k"} == set(range(len(tokens)))
    assert all(n["text"] == tokens[n["index"]]["text"] for n in nodes)
    texts = {n["text"] for n in nodes}
    assert "，" in texts and "中" in texts
    comma = next(n for n in nodes if n["text"] == "，" and n["side"] == "q")
    box = page.get_by_test_id("graph-canvas").bounding_box()
    page.mouse.move(box["x"] + comma["x"] - 20, box["y"] + comma["y"])
    page.wait_for_function(
        f"document.querySelector('[data-testid=graph-readout]').dataset.index === '{comma['index']}'"
    )
    chip = page.locator("[data-testid=graph-readout] strong .token-chip")
    assert chip.get_attribute("data-text") == "，" and chip.inner_text() == "，"
    screenshot(page, "graph-chinese")
    open_view(page, "Flow", "sankeys")
    legend = page.locator("[data-testid=sankey-tokens-legend] li[data-index]")
    rows = legend.evaluate_all("els => els.map(e => [Number(e.dataset.index), e.dataset.text])")
    assert rows and all(text == tokens[index]["text"] for index, text in rows)
    picked = ",".join(sorted({str(n["index"]) for n in nodes if n["text"] in ("，", "中")}, key=int))
    change(page, "sankey-tokens", picked, "sankeys", sankey_drawn(picked.replace(",", "%2C")))
    shown = set(legend.evaluate_all("els => els.map(e => e.dataset.text)"))
    assert {"，", "中"} <= shown
    groups = json.loads(page.get_by_test_id("sankey-canvas").get_attribute("data-groups"))
    assert any(g.endswith(" ，") for g in groups) and any(g.endswith(" 中") for g in groups)
    screenshot(page, "flow-sankey-chinese")


LONG = " ".join(
    f"Paragraph {i}: the river city traded salt and grain with its neighbours." for i in range(470)
)  # about 7,900 tokens


def test_graph_of_an_8k_token_input_keeps_the_dom_bounded(page, server):
    before = counter(page, "analyses")
    page.get_by_test_id("prompt-input").fill(LONG)
    page.get_by_test_id("prompt-input").press("Control+Enter")
    page.wait_for_function(f"Number(document.body.dataset.analyses || 0) > {before}", timeout=900_000)
    assert not page.get_by_test_id("error").is_visible()
    n = len(analysis(server, LONG)["tokens"])
    assert 7000 < n <= 8192
    open_view(page, "Graph", "graphs")
    status = page.get_by_test_id("graph-count")
    assert not page.get_by_test_id("graph-error").is_visible(), page.get_by_test_id("graph-error").inner_text()
    shown, above = int(status.get_attribute("data-shown")), int(status.get_attribute("data-above"))
    assert shown == 300 < above  # capped, and says so
    assert f"300 of {above} edges" in status.inner_text()
    canvas = page.get_by_test_id("graph-canvas")
    assert canvas.evaluate("c => c.height") <= 32767
    assert len(drawn_nodes(page)) <= 600
    assert dom_size(page) <= 2000
    change(page, "graph-max-edges", "5000", "graphs", graph_drawn("0.1", "5000"))
    change(page, "graph-threshold", "0.01", "graphs", graph_drawn("0.01", "5000"))
    assert not page.get_by_test_id("graph-error").is_visible(), page.get_by_test_id("graph-error").inner_text()
    assert int(status.get_attribute("data-shown")) == 5000
    assert canvas.evaluate("c => c.height") <= 32767 and dom_size(page) <= 2000
    screenshot(page, "graph-long")
    open_view(page, "Flow", "sankeys")  # refused in the web app beyond 4096 tokens, with one line
    error = page.get_by_test_id("sankey-error")
    assert error.is_visible() and "limited to 4096 tokens" in error.inner_text()
    assert dom_size(page) <= 2000
