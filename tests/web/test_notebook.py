"""A trace in a notebook: a real .ipynb (nbformat) that loads a tiny model, captures and displays the
trace is executed by nbclient on this environment's python3 kernel; the text/html it outputs is put
in a file and opened in Chromium with every request that is not file:, data:, blob: or about:
aborted. The page inside the iframe renders the trace: tokens, prediction, no console errors."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from attnscope.capture import capture
from attnscope.errors import InputError
from attnscope.render.notebook import notebook_html, show
from tests.conftest import CHINESE, ENGLISH, tiny
from tests.web.test_standalone import ALLOWED, F16, eager

CELLS = [
    "import attnscope\nfrom attnscope.capture import capture",
    'model = attnscope.load_model("tiny:llama")',
    f"trace = capture(model, {ENGLISH!r})\ntrace",  # _repr_html_
    f'capture(model, {CHINESE!r}).show(language="zh-CN")',  # show(): displayed once (it returns None)
]


def run_notebook(folder: Path) -> list[dict]:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(source) for source in CELLS]
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = folder / "trace.ipynb"
    nbformat.write(notebook, path)
    client = nbclient.NotebookClient(
        nbformat.read(path, as_version=4), timeout=600, kernel_name="python3", resources={"metadata": {"path": folder}}
    )
    executed = client.execute()
    return [cell["outputs"] for cell in executed.cells]


def frame_of(browser, path: Path):
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    blocked: list[str] = []
    errors: list[str] = []

    def route(route) -> None:
        if route.request.url.startswith(ALLOWED):
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    context.route("**/*", route)
    page = context.new_page()
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(path.as_uri())
    page.wait_for_function("document.querySelector('iframe') !== null")
    frame = page.frame_locator("iframe").first
    frame.locator("[data-testid=prediction]").wait_for(timeout=60_000)
    return context, frame, blocked, errors


def test_a_notebook_displays_the_trace_offline(browser, tmp_path):
    if sys.platform == "win32":
        pytest.skip("kernels on Windows are not part of this suite")
    outputs = run_notebook(tmp_path)
    shown = [o for o in outputs[2] if o.get("output_type") == "execute_result"]
    assert shown and "text/html" in shown[0]["data"]
    displayed = [o for o in outputs[3] if o.get("output_type") == "display_data" and "text/html" in o["data"]]
    assert len(displayed) == 1
    assert [o for o in outputs[3] if o.get("output_type") == "execute_result"] == []  # not shown a second time
    model = tiny("llama")
    maps, _ = eager(model, [t.id for t in capture(model, ENGLISH).tokens])
    for html, text, tab in (
        (shown[0]["data"]["text/html"], ENGLISH, "Heatmap"),
        (displayed[0]["data"]["text/html"], CHINESE, "热力图"),
    ):
        assert html.startswith("<iframe srcdoc=") and 'sandbox="allow-scripts allow-downloads"' in html
        page = tmp_path / f"output-{tab}.html"
        page.write_text(f"<!doctype html><meta charset='utf-8'><body>{html}</body>", encoding="utf-8")
        context, frame, blocked, errors = frame_of(browser, page)
        try:
            tokens = frame.locator("[data-testid=token]")
            texts = tokens.all_inner_texts()
            assert "".join(texts[1:]) == text  # after <bos>: the text, exactly
            assert frame.locator("#tab-heatmap").inner_text() == tab
            if text == ENGLISH:
                weights = np.array([float(tokens.nth(i).get_attribute("data-weight")) for i in range(len(texts))])
                assert np.abs(weights - maps[-1][:, -1].mean(axis=0)).max() < F16
            assert blocked == [] and errors == []
        finally:
            context.close()


def test_bad_inputs_to_the_notebook_display():
    trace = capture(tiny("llama"), ENGLISH)
    with pytest.raises(InputError, match="Trace"):
        notebook_html("not a trace")
    with pytest.raises(InputError, match="language"):
        notebook_html(trace, language="de")
    with pytest.raises(InputError, match="height"):
        notebook_html(trace, height=10)


def test_show_outside_a_notebook_writes_the_file(tmp_path):
    path = show(capture(tiny("llama"), ENGLISH), open_browser=False)
    assert path.suffix == ".html" and path.stat().st_size > 0
    try:
        assert b'id="attnscope-data"' in path.read_bytes()
    finally:
        shutil.rmtree(path.parent)
