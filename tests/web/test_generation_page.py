"""The page's Generate action, timeline and step diff, in Chromium, on the Chinese and English examples.

The expected numbers come from ``POST /api/generate`` on the same server (greedy: the same tokens),
which tests/capture/test_generation.py checks against plain transformers.
"""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import CHINESE, ENGLISH
from tests.web.conftest import screenshot

NEW_TOKENS = 8


def counter(page, name: str) -> int:
    return int(page.evaluate(f"Number(document.body.dataset.{name} || 0)"))


def generate_on_page(page, text: str) -> None:
    page.fill("[data-testid=prompt-input]", text)
    page.fill("[data-testid=max-new-tokens]", str(NEW_TOKENS))
    before = counter(page, "generations")
    page.click("[data-testid=generate-button]")
    page.wait_for_function(f"Number(document.body.dataset.generations || 0) > {before}", timeout=180_000)


def token_weights(page) -> list[float]:
    return [float(w) for w in page.locator("[data-testid=token]").evaluate_all("n => n.map(e => e.dataset.weight)")]


@pytest.mark.parametrize(("text", "name"), [(CHINESE, "chinese"), (ENGLISH, "english")])
def test_generate_timeline_and_step_diff_show_each_steps_attention(page, server, text, name):
    expected = httpx.post(
        f"{server}/api/generate", json={"text": text, "max_new_tokens": NEW_TOKENS}, timeout=300
    ).json()
    generate_on_page(page, text)
    assert page.locator("[data-testid=error]").is_hidden()
    steps = page.locator("[data-testid=step-token]")
    assert steps.count() == len(expected["steps"]) == NEW_TOKENS
    for s, step in enumerate(expected["steps"]):
        node = steps.nth(s)
        assert node.get_attribute("data-step") == str(s)
        assert node.get_attribute("data-token") == step["token"]["text"]
        assert float(node.get_attribute("data-prob")) == pytest.approx(step["prob"], abs=1e-6)
    # the views show prompt + answer, from the last step's query
    tokens = page.locator("[data-testid=token]")
    assert tokens.count() == len(expected["prompt"]["tokens"]) + NEW_TOKENS
    timeline = page.locator("[data-testid=timeline]")
    assert timeline.get_attribute("max") == str(NEW_TOKENS - 1) and timeline.input_value() == str(NEW_TOKENS - 1)

    # choosing step 3: the token elements' weights are that step's row (exact, once the analysis is in)
    before = counter(page, "analyses")
    timeline.fill("3")
    page.wait_for_function(f"Number(document.body.dataset.analyses || 0) > {before}")
    page.wait_for_function("document.body.dataset.busy === '0'")
    step = expected["steps"][3]
    weights = token_weights(page)
    p = step["position"]
    assert weights[:p] == pytest.approx(step["attention"]["weights"], abs=1e-5)
    assert all(w == 0 for w in weights[p:])  # later tokens: not yet generated at that step
    assert page.locator(".tok.query").get_attribute("data-token-index") == str(p - 1)
    assert page.locator(".tok.future").count() == len(weights) - p  # generated after this step: faded
    assert page.locator("[data-testid=prediction]").get_attribute("data-token-id") == str(step["top"][0]["id"])
    candidates = page.locator("[data-testid=step-candidate]")
    assert float(candidates.first.get_attribute("data-prob")) == pytest.approx(step["top"][0]["prob"], abs=1e-6)
    assert f"{p} keys" in page.locator("[data-testid=cache-state]").inner_text()

    # step diff against the step before: the listed changes are the rows' differences
    diff = page.locator("[data-testid=step-diff]")
    assert (diff.get_attribute("data-from"), diff.get_attribute("data-to")) == ("2", "3")
    before_row = expected["steps"][2]["attention"]["weights"]
    for item in page.locator("[data-testid=diff-gain], [data-testid=diff-loss]").all():
        i = int(item.get_attribute("data-position"))
        previous = before_row[i] if i < len(before_row) else 0.0
        assert float(item.get_attribute("data-delta")) == pytest.approx(
            step["attention"]["weights"][i] - previous, abs=2e-3
        )
    assert page.locator("[data-testid=diff-gain]").count() >= 1
    page.fill("[data-testid=diff-base]", "0")
    assert diff.get_attribute("data-from") == "0"
    page.fill("[data-testid=diff-base]", "")
    screenshot(page, f"generation-{name}")

    # keys and play: ← steps back; play runs to the last step and stops
    page.locator("[data-testid=step-label]").click()
    page.keyboard.press("ArrowLeft")
    assert timeline.input_value() == "2"
    page.click("[data-testid=play-button]")
    page.wait_for_function(
        f"document.querySelector('[data-testid=timeline]').value === '{NEW_TOKENS - 1}' && "
        "document.querySelector('[data-testid=play-button]').getAttribute('aria-pressed') === 'false'",
        timeout=30_000,
    )


def test_generate_refusals_and_analyze_after_a_generation(page, server):
    page.fill("[data-testid=prompt-input]", ENGLISH)
    page.fill("[data-testid=max-new-tokens]", "0")
    page.click("[data-testid=generate-button]")
    assert "new tokens" in page.locator("[data-testid=error]").inner_text()
    generate_on_page(page, ENGLISH)
    assert page.locator("[data-testid=generation]").is_visible()
    before = counter(page, "analyses")
    page.click("[data-testid=analyze-button]")  # a plain analysis of the prompt: the panel goes
    page.wait_for_function(f"Number(document.body.dataset.analyses || 0) > {before}")
    assert page.locator("[data-testid=generation]").is_hidden()
    assert page.locator("[data-testid=token]").count() == len(
        httpx.post(f"{server}/api/analyze", json={"text": ENGLISH}).json()["tokens"]
    )


def test_attribution_matrix_shows_each_steps_scores(page, server):
    request = {"text": ENGLISH, "max_new_tokens": NEW_TOKENS, "attribute": "attention"}
    expected = httpx.post(f"{server}/api/generate", json=request, timeout=300).json()["attribution"]
    generate_on_page(page, ENGLISH)
    before = counter(page, "stepAttributions")
    page.select_option("[data-testid=step-method]", "attention")
    page.wait_for_function(f"Number(document.body.dataset.stepAttributions || 0) > {before}", timeout=120_000)
    matrix = page.locator("[data-testid=attribution-matrix]")
    assert matrix.get_attribute("data-rows") == str(NEW_TOKENS) and matrix.get_attribute("data-method") == "attention"
    width = expected["positions"][-1] + 1
    matrix.scroll_into_view_if_needed()
    box = matrix.bounding_box()  # in the viewport: the mouse reaches it
    for step, key in ((0, 1), (3, 2), (NEW_TOKENS - 1, expected["positions"][-1] - 1)):
        # the plot area: 72 px left, 10 px right, 6 px top, 30 px bottom (timeline.js drawMatrix)
        x = box["x"] + 72 + (key + 0.5) * (box["width"] - 82) / width
        y = box["y"] + 6 + (step + 0.5) * (box["height"] - 36) / NEW_TOKENS
        page.mouse.move(x, y)
        readout = page.locator("[data-testid=matrix-readout]")
        assert (readout.get_attribute("data-step"), readout.get_attribute("data-position")) == (str(step), str(key))
        assert float(readout.get_attribute("data-value")) == pytest.approx(expected["scores"][step][key], abs=1e-6)
    assert "Colour = score ÷ the largest score" in page.locator("[data-testid=matrix-legend]").inner_text()
    screenshot(page, "generation-attribution-matrix")


@pytest.mark.parametrize(
    ("mode", "control", "value", "settings"),
    [("sample", "seed", "5", {"do_sample": True, "seed": 5}), ("beams", "beams", "3", {"num_beams": 3})],
)
def test_sampling_and_beam_search_from_the_page(page, server, mode, control, value, settings):
    request = {"text": ENGLISH, "max_new_tokens": NEW_TOKENS, **settings}
    expected = httpx.post(f"{server}/api/generate", json=request, timeout=300).json()
    page.select_option("[data-testid=decoding]", mode)
    page.fill(f"[data-testid={control}]", value)
    generate_on_page(page, ENGLISH)
    assert page.locator("[data-testid=error]").is_hidden()
    tokens = page.locator("[data-testid=step-token]").evaluate_all("n => n.map(e => e.dataset.token)")
    assert tokens == [s["token"]["text"] for s in expected["steps"]]
    if mode == "beams":
        assert "beam" in page.locator("[data-testid=step-info]").inner_text()
        assert "best beam" in page.locator("#marks-legend").inner_text()
    page.fill(f"[data-testid={control}]", "-1")
    before = counter(page, "generations")
    page.click("[data-testid=generate-button]")
    page.wait_for_function(f"Number(document.body.dataset.generations || 0) > {before}")
    assert control in page.locator("[data-testid=error]").inner_text()
