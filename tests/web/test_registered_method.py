"""A method registered in the catalogue by the process that serves the page shows up in the page's
selector, and choosing it colours the token strip with that method's scores (no name is listed in
the page itself)."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import ENGLISH, packaged
from tests.server.test_load import free_port
from tests.web.conftest import SERVED_MODEL, screenshot, serving
from tests.web.test_analysis_panels import choose_method, token_scores
from tests.web.test_browser import analyze

SERVE_WITH_A_METHOD = """
import sys
import numpy as np
from attnscope.methods import MethodOutput, MethodSpec, register

def first_token_only(request):
    scores = np.zeros(len(request.tokens))
    scores[0] = 1.0
    return MethodOutput(token_scores=scores)

register(MethodSpec("first-token-only", "first token only", "attention", "all importance on the first token",
                    needs=("trace",), run=first_token_only))
from attnscope.cli import main
sys.exit(main(["serve", "--model", sys.argv[1], "--port", sys.argv[2]]))
"""


@pytest.fixture
def own_server():
    packaged(SERVED_MODEL)
    port = free_port()
    with serving(["-c", SERVE_WITH_A_METHOD, SERVED_MODEL, str(port)], port) as base:
        yield base


def test_a_registered_method_colours_the_strip(browser, own_server):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    try:
        page.goto(own_server)
        page.wait_for_selector("body[data-ready='1']")
        option = page.locator("[data-testid=method-select] option[value='first-token-only']")
        assert option.inner_text() == "first token only"
        analyze(page, ENGLISH)
        choose_method(page, "first-token-only", "token")
        body = httpx.post(
            f"{own_server}/api/attribute", json={"text": ENGLISH, "method": "first-token-only"}, timeout=120
        ).json()
        scores = token_scores(page)
        assert scores == pytest.approx(body["token_scores"], abs=1e-12)
        assert scores == [1.0] + [0.0] * (len(scores) - 1)
        strengths = page.get_by_test_id("token").evaluate_all("els => els.map(e => e.style.getPropertyValue('--a'))")
        assert [float(a) for a in strengths] == [1.0] + [0.0] * (len(scores) - 1)
        assert "first token only" in page.locator("#legend").inner_text()
        screenshot(page, "registered-method")
    finally:
        context.close()
