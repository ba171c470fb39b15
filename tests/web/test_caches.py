"""Client-side caches are keyed by the model's fingerprint, the text and the options: after a model
switch (in this tab or another) the page never shows the previous model's numbers."""

from __future__ import annotations

import httpx
import pytest

from attnscope.render.palette import fmt
from tests.conftest import ENGLISH, packaged
from tests.web.conftest import SERVED_MODEL
from tests.web.test_browser import analyze, counter, switch_model, wait_after

OTHER_MODEL = "gemma3-270m"  # installed, listed in the model picker, loads in 10-20 s


def open_view(page, name: str) -> None:
    wait_after(page, lambda: page.get_by_role("tab", name="Tokens").click())
    wait_after(page, lambda: page.get_by_role("tab", name=name).click())


def metric_readout(page, layer: int, head: int, heads: int) -> tuple[str, float]:
    """Hover a head of the metric grid: the read-out's text and exact value."""
    canvas = page.get_by_test_id("metric-canvas")
    box = canvas.bounding_box()
    cell = box["width"] / heads
    page.mouse.move(box["x"] + cell * (head + 0.5), box["y"] + cell * (layer + 0.5))
    readout = page.get_by_test_id("metric-readout")
    page.wait_for_function(
        f"document.querySelector('[data-testid=metric-readout]').textContent.startsWith('layer {layer}, head {head}:')"
    )
    return readout.inner_text(), float(readout.get_attribute("data-value"))


def heads_api(server) -> dict:
    return httpx.post(f"{server}/api/heads", json={"text": ENGLISH}, timeout=300).json()


def parts_api(server) -> dict:
    parts = [{"name": "part1", "start": 0, "end": len(ENGLISH)}]
    return httpx.post(f"{server}/api/parts", json={"text": ENGLISH, "parts": parts}, timeout=300).json()


def check_metrics_are(page, body: dict) -> float:
    metric = body["metrics"]["entropy"]
    page.wait_for_function(
        "n => document.querySelector('[data-testid=metric-canvas]').height === n * 14", arg=len(metric)
    )
    text, value = metric_readout(page, 2, 3, len(metric[0]))
    assert value == pytest.approx(metric[2][3], abs=1e-12)
    assert text == f"layer 2, head 3: entropy = {fmt(metric[2][3])} · label {body['labels'][2][3]}"
    return value


def measure_parts(page) -> list[float]:
    before = counter(page, "partRuns")
    page.get_by_test_id("parts-run").click()
    page.wait_for_function(f"Number(document.body.dataset.partRuns || 0) > {before}", timeout=120_000)
    rows = page.get_by_test_id("parts-table").locator("tbody tr")
    return [
        float(v)
        for v in rows.nth(rows.count() - 1).locator(".mass").evaluate_all("els => els.map(e => e.dataset.value)")
    ]


def restore(server) -> None:
    httpx.post(f"{server}/api/model", json={"spec": SERVED_MODEL}, timeout=300).raise_for_status()


def test_head_metrics_and_parts_follow_a_model_switch(page, server):
    packaged(OTHER_MODEL)
    analyze(page, ENGLISH)
    open_view(page, "Head metrics")
    old = heads_api(server)
    old_value = check_metrics_are(page, old)
    open_view(page, "Prompt parts")
    old_parts = parts_api(server)
    assert measure_parts(page) == pytest.approx(old_parts["mean_over_heads"][-1], abs=1e-6)
    switch_model(page, OTHER_MODEL)
    try:
        new = heads_api(server)
        assert new["model"]["fingerprint"] != old["model"]["fingerprint"]
        open_view(page, "Head metrics")
        assert check_metrics_are(page, new) != pytest.approx(old_value, abs=1e-6)
        open_view(page, "Prompt parts")  # the previous model's table is not shown for this one
        assert page.get_by_test_id("parts-table").count() == 0
        new_parts = parts_api(server)
        shown = measure_parts(page)
        assert page.get_by_test_id("parts-table").locator("tbody tr").count() == len(new_parts["mean_over_heads"])
        assert shown == pytest.approx(new_parts["mean_over_heads"][-1], abs=1e-6)
    finally:
        restore(server)


def test_head_metrics_follow_a_model_switched_in_another_tab(page, browser, server):
    """The server is shared: a model picked in another tab's picker answers this tab's next request,
    and this tab notices it from the answer's model fingerprint (same text, different model)."""
    packaged(OTHER_MODEL)
    analyze(page, ENGLISH)
    open_view(page, "Head metrics")
    old = heads_api(server)
    old_value = check_metrics_are(page, old)
    other = browser.new_page()
    try:
        other.goto(server)
        other.wait_for_selector("body[data-ready='1']")
        before = counter(other, "analyses")
        other.get_by_test_id("model-select").select_option(OTHER_MODEL)
        other.wait_for_function(f"Number(document.body.dataset.analyses || 0) > {before}", timeout=300_000)
        new = heads_api(server)
        analyze(page, ENGLISH)  # the same text, now answered by the other model
        open_view(page, "Head metrics")
        assert check_metrics_are(page, new) != pytest.approx(old_value, abs=1e-6)
        page.wait_for_function(
            "spec => document.getElementById('model-select').value === spec", arg=OTHER_MODEL
        )  # the picker follows the model the server answers with
        assert page.get_by_test_id("token").count() == len(
            httpx.post(f"{server}/api/analyze", json={"text": ENGLISH}, timeout=120).json()["tokens"]
        )
    finally:
        other.close()
        restore(server)
