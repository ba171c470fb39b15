"""The Generation panel beyond plain causal text, in Chromium: a chat's parts coloured by role, and an
encoder-decoder's steps with the stack selector (encoder, decoder, cross).

Expected numbers come from the HTTP API of the same server (``POST /api/generate``, which
tests/capture/test_generation.py checks against plain transformers); which token belongs to which
part is recomputed here from the parts' character spans.
"""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import CHINESE, ENGLISH
from tests.server.test_load import free_port
from tests.web.conftest import opened, screenshot, serving
from tests.web.test_generation_page import counter, generate_on_page, token_weights

NEW_TOKENS = 8


def overlapping(token: dict, parts: list[dict]) -> str | None:
    if token["start"] is None:
        return None
    for part in parts:
        if token["start"] < part["end"] and max(token["end"], token["start"] + 1) > part["start"]:
            return part["name"]
    return None


@pytest.mark.parametrize("text", [CHINESE, ENGLISH])
def test_chat_generation_underlines_each_token_by_its_role(page, server, text):
    request = {"messages": [{"role": "user", "content": text}], "max_new_tokens": NEW_TOKENS}
    expected = httpx.post(f"{server}/api/generate", json=request, timeout=300).json()
    page.check("[data-testid=chat]")
    generate_on_page(page, text)
    assert page.locator("[data-testid=error]").is_hidden()
    offset = len(expected["prompt"]["text"])  # generated spans count in the answer; the views' in prompt + answer
    answer = [
        {**t, "start": t["start"] + offset, "end": t["end"] + offset} if t["start"] is not None else t
        for t in expected["generated"]["tokens"]
    ]
    tokens = expected["prompt"]["tokens"] + answer
    shown = page.locator("[data-testid=token]").evaluate_all("n => n.map(e => e.dataset.part || null)")
    assert shown == [overlapping(t, expected["parts"]) for t in tokens]
    assert {"user", "answer"} <= set(shown)  # the template's own tokens (role markers) are in no part
    assert None in shown
    assert shown[-1] == "answer" and shown[len(expected["prompt"]["tokens"]) - 1] is None
    legend = page.locator("[data-testid=parts-legend]")
    assert legend.locator(".part-swatch").evaluate_all("n => n.map(e => e.dataset.part)") == ["user", "answer"]
    colours = (
        page.locator("[data-testid=token][data-part=user]").first.evaluate("e => getComputedStyle(e).boxShadow"),
        page.locator("[data-testid=token][data-part=answer]").first.evaluate("e => getComputedStyle(e).boxShadow"),
    )
    assert colours[0] != colours[1] and "rgb" in colours[0]
    screenshot(page, f"generation-chat-parts-{'chinese' if text == CHINESE else 'english'}")


@pytest.fixture(scope="module")
def seq2seq_server():
    port = free_port()
    with serving(["-m", "attnscope", "serve", "--model", "tiny:t5", "--port", str(port)], port) as base:
        yield base


@pytest.fixture
def seq2seq_page(browser, seq2seq_server):
    with opened(browser, seq2seq_server) as page:
        yield page


def wait_analysis(page, before: int) -> None:
    page.wait_for_function(f"Number(document.body.dataset.analyses || 0) > {before}")
    page.wait_for_function("document.body.dataset.busy === '0'")


def test_encoder_decoder_generation_with_the_stack_selector(seq2seq_page, seq2seq_server):
    page = seq2seq_page
    request = {"text": ENGLISH, "max_new_tokens": NEW_TOKENS}
    decoder = httpx.post(f"{seq2seq_server}/api/generate", json={**request, "stack": "decoder"}, timeout=300).json()
    cross = httpx.post(f"{seq2seq_server}/api/generate", json=request, timeout=300).json()  # default: cross
    steps = len(decoder["steps"])
    assert steps >= 2 and [s["token"] for s in cross["steps"]] == [s["token"] for s in decoder["steps"]]
    generate_on_page(page, ENGLISH)
    assert page.locator("[data-testid=error]").is_hidden()
    tokens = page.locator("[data-testid=step-token]").evaluate_all("n => n.map(e => e.dataset.token)")
    assert tokens == [s["token"]["text"] for s in decoder["steps"]]
    stack = page.locator("[data-testid=stack-select]")
    assert stack.is_visible() and stack.input_value() == "cross"  # the default: what the predictions read
    assert stack.locator("option").evaluate_all("n => n.map(e => e.value)") == ["encoder", "decoder", "cross"]
    # cross stack: every encoder token, from the last step's query
    assert page.locator("[data-testid=token]").count() == len(decoder["prompt"]["tokens"])
    assert token_weights(page) == pytest.approx(cross["steps"][-1]["attention"]["weights"], abs=1e-6)
    assert "The rows below are cross-attention" in page.locator("[data-testid=cache-state]").inner_text()
    before = counter(page, "analyses")
    page.locator("[data-testid=timeline]").fill("1")
    wait_analysis(page, before)
    assert token_weights(page) == pytest.approx(cross["steps"][1]["attention"]["weights"], abs=1e-6)
    diff = page.locator("[data-testid=step-diff]")
    assert diff.get_attribute("data-to") == "1" and diff.get_attribute("data-keys") == str(
        len(cross["prompt"]["tokens"])
    )
    assert "over the encoder's tokens" in page.locator("#trajectory-legend").inner_text()
    assert page.locator("[data-testid=step-method]").is_disabled()  # per-step attribution: decoder-only models
    screenshot(page, "generation-seq2seq-cross")

    before = counter(page, "analyses")
    stack.select_option("decoder")  # the start token + the answer, step 1's row over its prefix
    wait_analysis(page, before)
    assert page.locator("[data-testid=token]").count() == len(decoder["target_tokens"])
    row = decoder["steps"][1]["attention"]["weights"]
    weights = token_weights(page)
    assert weights[: len(row)] == pytest.approx(row, abs=1e-6) and not any(weights[len(row) :])
    assert "Decoder KV cache" in page.locator("[data-testid=cache-state]").inner_text()
    assert diff.get_attribute("data-keys") == "2"  # step 1's prefix: the start token and step 0's token
    assert page.locator("[data-testid=token].query").count() == 1  # the decoder's query is one of its keys
    faded = page.locator("[data-testid=token].future").count()
    assert faded == len(decoder["target_tokens"]) - len(row)  # not generated yet at step 1

    before = counter(page, "analyses")
    stack.select_option("encoder")  # the encoder's own rows: the timeline keeps cross-attention
    wait_analysis(page, before)
    assert page.locator("[data-testid=token]").count() == len(decoder["prompt"]["tokens"])
    assert page.locator("[data-testid=timeline]").is_enabled()
    assert page.locator("[data-testid=error]").is_hidden()


def test_beam_search_draws_its_branches_under_the_timeline(page, server):
    request = {"text": ENGLISH, "max_new_tokens": NEW_TOKENS, "num_beams": 3}
    tree = httpx.post(f"{server}/api/generate", json=request, timeout=300).json()["beam_tree"]
    page.select_option("[data-testid=decoding]", "beams")
    page.fill("[data-testid=beams]", "3")
    generate_on_page(page, ENGLISH)
    assert page.locator("[data-testid=error]").is_hidden()
    canvas = page.locator("[data-testid=beam-tree]")
    assert canvas.is_visible()
    assert canvas.get_attribute("data-steps") == str(len(tree))
    lanes = max(n["rank"] for nodes in tree for n in nodes) + 1
    assert canvas.get_attribute("data-lanes") == str(lanes)
    best = [next(n["rank"] for n in nodes if n["best"]) for nodes in tree]
    assert canvas.get_attribute("data-best") == ",".join(map(str, best))
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    steps = len(tree)

    def at(step: int, rank: int) -> tuple[float, float]:  # beams.js: THUMB 16 px, lanes of 14 px from 14 px
        return box["x"] + 8 + step / (steps - 1) * (box["width"] - 16), box["y"] + 14 + rank * 14 + 7

    readout = page.locator("[data-testid=beam-readout]")
    for step in (0, steps // 2, steps - 1):
        for node in tree[step]:
            page.mouse.move(*at(step, node["rank"]))
            assert (readout.get_attribute("data-step"), readout.get_attribute("data-rank")) == (
                str(step),
                str(node["rank"]),
            )
            assert readout.get_attribute("data-token-id") == str(node["token"]["id"])
            assert float(readout.get_attribute("data-logprob-cum")) == pytest.approx(node["logprob_cum"], abs=1e-6)
    page.mouse.click(*at(2, tree[2][0]["rank"]))
    assert page.locator("[data-testid=timeline]").input_value() == "2"
    screenshot(page, "generation-beam-tree")
    page.select_option("[data-testid=decoding]", "greedy")
    generate_on_page(page, ENGLISH)
    assert canvas.is_hidden() and page.locator("[data-testid=beam-legend]").is_hidden()
