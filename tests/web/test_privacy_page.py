"""Personal data in the page, in Chromium: the tokens over a phone or ID number show its label until
"show personal data" is ticked (display only: nothing is sent for it), in the views and in a
generation's panel; the Chinese and the English example.

The values' places are found with ``str.find`` on values written here; expected tokens come from the
server's own answer (``POST /api/analyze``), independent of the page.
"""

from __future__ import annotations

import httpx
import pytest

from tests.web.conftest import screenshot
from tests.web.test_generation_page import counter, generate_on_page

PHONE = "13812345678"
TEXTS = {"chinese": f"我的电话是{PHONE}，他的首都在于", "english": f"Call me at {PHONE}. The capital of France is"}


def strip_texts(page, testid: str) -> list[str]:
    return page.locator(f"[data-testid={testid}]").evaluate_all("n => n.map(e => e.textContent)")


def analyze(page, text: str) -> None:
    page.fill("[data-testid=prompt-input]", text)
    before = counter(page, "analyses")
    page.click("[data-testid=analyze-button]")
    page.wait_for_function(f"Number(document.body.dataset.analyses || 0) > {before}")


@pytest.mark.parametrize("name", ["chinese", "english"])
def test_personal_data_is_masked_until_revealed(page, server, name):
    text = TEXTS[name]
    answer = httpx.post(f"{server}/api/analyze", json={"text": text}, timeout=120).json()
    start = text.find(PHONE)
    inside = [
        i
        for i, t in enumerate(answer["tokens"])
        if t["start"] is not None and t["start"] < start + len(PHONE) and max(t["end"], t["start"] + 1) > start
    ]
    span = {"start": start, "end": start + len(PHONE), "kind": "PHONE", "label": "[PHONE]"}
    assert inside and answer["pii"] == [span]
    analyze(page, text)
    shown = strip_texts(page, "token")
    assert [shown[i] for i in inside] == ["[PHONE]"] + ["…"] * (len(inside) - 1)  # the label once per value
    assert PHONE[:4] not in "".join(shown) and "[PHONE]" in page.locator("[data-testid=pii-note]").inner_text()
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.check("[data-testid=reveal-pii]")
    shown = strip_texts(page, "token")
    assert "".join(shown[i] for i in inside) == PHONE and not requests  # revealed here, nothing sent
    screenshot(page, f"privacy-revealed-{name}")
    page.uncheck("[data-testid=reveal-pii]")
    assert PHONE[:4] not in "".join(strip_texts(page, "token"))
    screenshot(page, f"privacy-masked-{name}")


def test_a_generation_masks_its_prompt_tokens_until_revealed(page, server):
    generate_on_page(page, TEXTS["english"])
    assert page.locator("[data-testid=error]").is_hidden()
    assert PHONE[:4] not in "".join(strip_texts(page, "token"))
    page.check("[data-testid=reveal-pii]")
    assert PHONE in "".join(strip_texts(page, "token"))
