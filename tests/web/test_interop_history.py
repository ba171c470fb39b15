"""An attribution imported from inseq's saved format opens in the History page like any stored run:
its units and scores (the imported numbers), and its origin ``import``."""

from __future__ import annotations

import pytest

from attnscope.capture import capture
from attnscope.render.inseq_export import to_inseq
from attnscope.render.inseq_io import import_inseq
from attnscope.store.runs import RunsStore
from tests.conftest import CHINESE, tiny
from tests.web.conftest import screenshot
from tests.web.test_history_page import open_run, search, values

pytest.importorskip("inseq")
MARK = "（互操作）"  # this test's text, findable among the session's runs


def test_an_inseq_import_opens_in_history(page, tmp_path):
    text = f"{CHINESE}{MARK}"
    saved = tmp_path / "inseq.json"
    to_inseq(capture(tiny("gpt2"), text), "attention").save(saved)  # inseq's own JSON writer
    with RunsStore() as store:  # the data folder the session's server reads
        (run,) = import_inseq(store, saved)
        answer = store.result(run)
    page.click("[data-testid=history-button]")
    search(page, text=MARK)
    items = page.locator("[data-testid=run-item]")
    assert items.evaluate_all("n => n.map(e => e.dataset.runId)") == [run.id]
    open_run(page, run.id)
    assert values(page, "[data-testid=stored-unit]", "score") == pytest.approx(answer["scores"], abs=1e-12)
    shown = page.locator("[data-testid=stored-unit]").evaluate_all("n => n.map(e => e.textContent)")
    assert "".join(shown) == text and shown[0] == "我"
    head = page.locator("#stored-run .stored-head").inner_text()
    assert "import" in head and "inseq:attnscope:attention" in page.locator("#stored-run").inner_text()
    screenshot(page, "history-inseq-import")
