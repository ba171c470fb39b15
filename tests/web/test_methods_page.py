"""The method selector, the unit selector and the option inputs are built from the method catalogue
(GET /api/methods); slow requests show their progress and can be cancelled."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import ENGLISH
from tests.web.conftest import screenshot
from tests.web.test_analysis_panels import choose_method, token_scores
from tests.web.test_browser import analyze, counter


def catalogue(server) -> dict:
    return httpx.get(f"{server}/api/methods", timeout=30).json()


def attribute(server, **body) -> dict:
    return httpx.post(f"{server}/api/attribute", json={"text": ENGLISH, **body}, timeout=300).json()


def test_selectors_are_built_from_the_catalogue(page, server):
    methods = [m for m in catalogue(server)["methods"] if m["scores_tokens"]]
    select = page.get_by_test_id("method-select")
    values = select.evaluate("s => [...s.options].map(o => o.value)")
    titles = select.evaluate("s => [...s.options].map(o => o.textContent)")
    assert values == ["", *[m["name"] for m in methods]]
    assert titles[1:] == [m["title"] for m in methods]  # every method works on the served causal model
    units = page.get_by_test_id("granularity-select").evaluate("s => [...s.options].map(o => o.value)")
    assert units == catalogue(server)["units"]
    assert page.get_by_test_id("method-options").is_hidden()  # the attention row has no options


def test_option_inputs_follow_the_specs_and_are_sent(page, server):
    specs = {m["name"]: m for m in catalogue(server)["methods"]}
    analyze(page, ENGLISH)
    choose_method(page, "integrated-gradients", "token")
    steps, baseline = specs["integrated-gradients"]["options"]
    box = page.get_by_test_id("method-options")
    number = box.get_by_test_id(f"option-{steps['name']}")
    assert number.get_attribute("type") == "number"
    assert [number.get_attribute("min"), number.get_attribute("max")] == [
        f"{steps['minimum']:g}",
        f"{steps['maximum']:g}",
    ]
    assert box.get_by_test_id(f"option-{steps['name']}-auto").is_checked() and number.is_disabled()
    choices = box.get_by_test_id(f"option-{baseline['name']}").evaluate("s => [...s.options].map(o => o.value)")
    assert choices == baseline["choices"]
    screenshot(page, "method-options")
    # rollout's residual: a number input within [0, 1]; a new value is sent and the strip shows its scores
    choose_method(page, "rollout", "token")
    residual = box.get_by_test_id("option-residual")
    assert [residual.get_attribute("min"), residual.get_attribute("max")] == ["0", "1"]
    assert token_scores(page) == pytest.approx(attribute(server, method="rollout")["token_scores"], abs=1e-12)
    before = counter(page, "attributions")
    residual.fill("0.9")
    residual.dispatch_event("change")
    page.wait_for_function(f"Number(document.body.dataset.attributions || 0) > {before}", timeout=120_000)
    expected = attribute(server, method="rollout", options={"residual": 0.9})
    assert expected["options"]["residual"] == 0.9
    assert token_scores(page) == pytest.approx(expected["token_scores"], abs=1e-12)
    assert token_scores(page) != pytest.approx(attribute(server, method="rollout")["token_scores"], abs=1e-6)
    # an out-of-range value is refused in the page, with the limits
    before = counter(page, "attributions")
    residual.fill("1.5")
    residual.dispatch_event("change")
    page.wait_for_function(f"Number(document.body.dataset.attributions || 0) > {before}")
    assert "residual must be between 0 and 1" in page.get_by_test_id("error").inner_text()


def test_a_slow_method_shows_progress_and_can_be_cancelled(page, server):
    analyze(page, ENGLISH)
    choose_method(page, "grad-norm", "token")
    kept = token_scores(page)
    choose_method(page, "integrated-gradients", "token")
    box = page.get_by_test_id("method-options")
    steps = box.get_by_test_id("option-steps")
    before = counter(page, "attributions")
    box.get_by_test_id("option-steps-auto").uncheck()  # a fixed step count (32 by default) is sent
    page.wait_for_function(f"Number(document.body.dataset.attributions || 0) > {before}", timeout=120_000)
    assert steps.input_value() == "32"
    before = counter(page, "attributions")
    steps.fill("4096")  # long enough to cancel
    steps.dispatch_event("change")
    page.wait_for_function(
        "document.querySelector('[data-testid=busy-text]').textContent.includes('(4096 steps)')"
        " && document.querySelector('[data-testid=progress]').value > 0",
        timeout=120_000,
    )
    assert page.get_by_test_id("progress").is_visible()
    assert page.get_by_test_id("cancel").is_visible()
    screenshot(page, "progress-cancel")
    page.get_by_test_id("cancel").click()
    page.wait_for_function(f"Number(document.body.dataset.attributions || 0) > {before}", timeout=120_000)
    assert page.get_by_test_id("job-status").inner_text() == "cancelled"
    assert page.get_by_test_id("error").is_hidden()
    assert page.get_by_test_id("busy").is_hidden()
    # the controls are back to what the strip shows (32 steps)
    assert page.get_by_test_id("method-select").input_value() == "integrated-gradients"
    assert steps.input_value() == "32"
    assert "(32 steps)" in page.locator("#legend").inner_text()
    # the page stays usable: the selector is back to what the strip shows, other methods still run
    choose_method(page, "grad-norm", "token")
    assert token_scores(page) == pytest.approx(kept, abs=1e-12)
    choose_method(page, "grad-x-input", "token")
    assert token_scores(page) == pytest.approx(attribute(server, method="grad-x-input")["token_scores"], abs=1e-12)
