"""The History page in Chromium: runs the server stored are searched, opened from their stored answers
alone (no request that runs a model) and deleted. Expected numbers are the answers the server gave
when each run was made (``POST /api/analyze``, ``/api/attribute``, ``/api/generate``).
"""

from __future__ import annotations

import datetime

import httpx
import pytest

from tests.conftest import CHINESE, ENGLISH
from tests.web.conftest import screenshot

MARK = "（历史页）"  # makes this test's texts findable among every run the session's server stored


def counter(page, name: str) -> int:
    return int(page.evaluate(f"Number(document.body.dataset.{name} || 0)"))


def search(page, **fields: str) -> None:
    for name in ("text", "model", "since", "until"):
        page.fill(f"[data-testid=history-{name}]", fields.get(name, ""))
    for name in ("method", "kind"):
        page.select_option(f"[data-testid=history-{name}]", fields.get(name, ""))
    before = counter(page, "historySearches")
    page.click("[data-testid=history-search]")
    page.wait_for_function(f"Number(document.body.dataset.historySearches || 0) > {before}")


def open_run(page, run_id: str) -> None:
    before = counter(page, "runOpens")
    page.locator(f"[data-testid=run-item][data-run-id='{run_id}'] [data-testid=run-open]").click()
    page.wait_for_function(f"Number(document.body.dataset.runOpens || 0) > {before}")


def values(page, selector: str, key: str) -> list[float]:
    return [float(v) for v in page.locator(selector).evaluate_all(f"n => n.map(e => e.dataset.{key})")]


def test_history_searches_opens_and_deletes_stored_runs(page, server):
    text = f"{CHINESE}{MARK}"
    analysis = httpx.post(f"{server}/api/analyze", json={"text": text, "layer": 3, "head": 2}, timeout=120).json()
    attribution = httpx.post(
        f"{server}/api/attribute", json={"text": text, "method": "grad-x-input", "granularity": "word"}, timeout=300
    ).json()
    generation = httpx.post(
        f"{server}/api/generate", json={"text": f"{ENGLISH}{MARK}", "max_new_tokens": 4}, timeout=300
    ).json()
    ids = [analysis["run_id"], attribution["run_id"], generation["run_id"]]

    page.click("[data-testid=history-button]")
    assert page.locator("[data-testid=history]").is_visible()
    search(page, text=MARK)
    items = page.locator("[data-testid=run-item]")
    assert items.evaluate_all("n => n.map(e => e.dataset.runId)") == ids[::-1]  # newest first
    assert items.evaluate_all("n => n.map(e => e.dataset.kind)") == ["generation", "attribution", "analysis"]

    requests: list[str] = []  # opening a run must not run a model
    page.on("request", lambda request: requests.append(request.url))
    open_run(page, ids[0])
    row = analysis["attention"]["weights"]
    assert values(page, "[data-testid=stored-token]", "weight") == pytest.approx(row, abs=1e-9)
    top = [c["prob"] for c in analysis["prediction"]["top"]]
    assert values(page, "[data-testid=stored-candidates] li", "prob") == pytest.approx(top, abs=1e-12)
    screenshot(page, "history-analysis-chinese")
    open_run(page, ids[1])
    assert values(page, "[data-testid=stored-unit]", "score") == pytest.approx(attribution["scores"], abs=1e-9)
    open_run(page, ids[2])
    page.locator("[data-testid=stored-timeline]").fill("1")
    step = generation["steps"][1]
    weights = values(page, "[data-testid=stored-token]", "weight")
    assert weights[: step["position"]] == pytest.approx(step["attention"]["weights"], abs=1e-9)
    assert not any(weights[step["position"] :])
    assert all("/api/runs/" in url for url in requests), requests
    screenshot(page, "history-generation-english")

    search(page, text=MARK, kind="attribution")
    assert items.evaluate_all("n => n.map(e => e.dataset.runId)") == [ids[1]]
    search(page, text=MARK, method="grad-x-input")
    assert items.count() == 1
    search(page, text=MARK, model="no such model")
    assert items.count() == 0 and "no stored runs match" in page.locator("[data-testid=history-count]").inner_text()
    tomorrow = (datetime.datetime.now(datetime.UTC).date() + datetime.timedelta(days=1)).isoformat()
    search(page, text=MARK, since=tomorrow)
    assert items.count() == 0
    today = datetime.datetime.now(datetime.UTC).date().isoformat()
    search(page, text=MARK, until=today)  # "to" a day includes it
    assert items.count() == 3

    before = counter(page, "runDeletes")
    page.locator(f"[data-testid=run-item][data-run-id='{ids[0]}'] [data-testid=run-delete]").click()
    page.wait_for_function(f"Number(document.body.dataset.runDeletes || 0) > {before}")
    assert items.count() == 2 and httpx.get(f"{server}/api/runs/{ids[0]}").status_code == 404
    search(page, text=MARK)
    assert items.evaluate_all("n => n.map(e => e.dataset.runId)") == ids[:0:-1]
    assert page.locator("[data-testid=error]").is_hidden()


def test_a_noised_run_opens_with_its_label_and_only_its_noised_numbers(page, server):
    text = f"{ENGLISH}{MARK}dp"
    noised = httpx.post(f"{server}/api/analyze", json={"text": text, "dp_epsilon": 2.0}, timeout=120).json()
    page.click("[data-testid=history-button]")
    search(page, text=f"{MARK}dp")
    open_run(page, noised["run_id"])
    label = page.locator("[data-testid=stored-dp-label]")
    assert label.is_visible() and "ε = 2" in label.inner_text() and "never stored" in label.inner_text()
    shown = values(page, "[data-testid=stored-token]", "weight")
    assert shown == pytest.approx(noised["attention"]["weights"], abs=1e-9)


def test_views_of_one_text_fold_into_one_row(page, server):
    """Each layer or head the page asks for is its own stored run; History folds the consecutive runs
    of one text on one model under the newest, and lists the others on request."""
    text = f"{ENGLISH}（视图）{MARK}"
    ids = [
        httpx.post(f"{server}/api/analyze", json={"text": text, "layer": layer}, timeout=120).json()["run_id"]
        for layer in (0, 1, 2)
    ]
    other = httpx.post(f"{server}/api/attribute", json={"text": text, "method": "attention"}, timeout=120).json()
    page.click("[data-testid=history-button]")
    search(page, text="（视图）")
    rows = page.locator("[data-testid=history-list] > [data-testid=run-item]")
    assert rows.evaluate_all("n => n.map(e => e.dataset.runId)") == [other["run_id"], ids[2]]
    toggle = rows.nth(1).locator("[data-testid=run-views]")
    assert toggle.inner_text() == "3 views" and rows.nth(0).locator("[data-testid=run-views]").count() == 0
    nested = rows.nth(1).locator("[data-testid=run-views-list] > [data-testid=run-item]")
    assert nested.evaluate_all("n => n.map(e => e.dataset.runId)") == [ids[1], ids[0]] and not nested.first.is_visible()
    toggle.click()
    assert nested.first.is_visible() and toggle.get_attribute("aria-expanded") == "true"
    open_run(page, ids[0])  # an older view opens as any run does
    assert page.locator("[data-testid=stored-run]").get_attribute("data-run-id") == ids[0]
    before = counter(page, "runDeletes")
    rows.nth(1).locator("> [data-testid=run-delete]").click()  # the newest view: the group is remade
    page.wait_for_function(f"Number(document.body.dataset.runDeletes || 0) > {before}")
    page.wait_for_function("document.querySelectorAll('[data-testid=history-list] > li').length === 2")
    assert rows.nth(1).get_attribute("data-run-id") == ids[1]
    assert rows.nth(1).locator("[data-testid=run-views]").inner_text() == "2 views"
