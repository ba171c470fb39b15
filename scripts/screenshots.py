"""Screenshots of every registered view into docs/views/<view-id>-<lang>.png.

Starts ``attnscope serve`` on 127.0.0.1 with a packaged model, opens Debian's Chromium through
Playwright, analyses the English and the Chinese example (each with the page in its language) and,
in the light theme, clicks every tab of the tab bar (so every view in the registry is included) and
saves the main area. One dark-theme picture per language: docs/views/tokens-<lang>-dark.png.

Usage:
    .venv/bin/python scripts/screenshots.py                      # every view, en and zh
    .venv/bin/python scripts/screenshots.py --views tokens,heatmap --langs en
Needs Debian's chromium (apt-get install chromium) and fonts-noto-cjk for the Chinese glyphs.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
from playwright.sync_api import Page, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeout

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = {"en": ("The capital of France is", "en"), "zh": ("我爱中国，他的首都在于", "zh-CN")}
SETTLE_S = 300.0  # the longest a view may take to draw (the agreement view runs every method; a bias suite)
# Views that wait for their own input: what the screenshot fills in and clicks, per example.
EDITS = {"en": ("France", "Germany"), "zh": ("他", "她")}
SUITES = {"en": "gender-occupation-en", "zh": "gender-occupation-zh"}
COMPARE_WITH = "gemma3-270m"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def serve(model: str, port: int) -> Iterator[str]:
    """``attnscope serve`` on 127.0.0.1:port until its model is ready; stopped afterwards."""
    argv = [sys.executable, "-m", "attnscope", "serve", "--model", model, "--host", "127.0.0.1", "--port", str(port)]
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 600
        while True:
            if process.poll() is not None:
                raise SystemExit(f"attnscope serve exited with {process.returncode}")
            try:
                if httpx.get(f"{base}/api/model", timeout=2).json().get("status") == "ready":
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("attnscope serve did not become ready in 10 minutes")
            time.sleep(0.5)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)


def counter(page: Page, name: str) -> int:
    return int(page.evaluate(f"Number(document.body.dataset.{name} || 0)"))


def settle(page: Page) -> None:
    """Waits until no request of the page is busy (the busy line hidden), then for two frames."""
    page.wait_for_function("document.getElementById('busy').hidden", timeout=SETTLE_S * 1000)
    page.wait_for_timeout(400)


def analyse(page: Page, text: str) -> None:
    before = counter(page, "analyses")
    page.get_by_test_id("prompt-input").fill(text)
    page.get_by_test_id("prompt-input").press("Control+Enter")
    page.wait_for_function(f"Number(document.body.dataset.analyses || 0) > {before}", timeout=SETTLE_S * 1000)
    settle(page)


def show_view(page: Page, tab_id: str) -> None:
    before = counter(page, "renders")
    page.locator(f"#{tab_id}").click()
    # a view that waits for its own input (e.g. a bias run) may not render: it still gets its picture
    with contextlib.suppress(PlaywrightTimeout):
        page.wait_for_function(f"Number(document.body.dataset.renders || 0) > {before}", timeout=SETTLE_S * 1000)
    settle(page)


def fill_in(page: Page, view: str, lang: str) -> None:
    """Gives a view that waits for its own input (compare, counterfactual, rules, bias) something to show."""
    button, done = None, ""
    if view == "compare":
        page.get_by_test_id("compare-model-select").select_option(COMPARE_WITH)
        button, done = "compare-run", "comparisons"
    elif view == "counterfactual":
        old, new = EDITS[lang]
        page.get_by_test_id("counterfactual-old").fill(old)
        page.get_by_test_id("counterfactual-new").fill(new)
        button, done = "counterfactual-run", "counterfactuals"
    elif view == "rules":
        page.get_by_test_id("rules-example").select_option("basic")
        button, done = "rules-check", "ruleChecks"
    elif view == "bias":
        page.get_by_test_id("bias-suite").select_option(SUITES[lang])
        button, done = "bias-run", "biasRuns"
    if button is None:
        return
    before = counter(page, done)
    page.get_by_test_id(button).click()
    page.wait_for_function(f"Number(document.body.dataset.{done} || 0) > {before}", timeout=SETTLE_S * 1000)
    settle(page)


def shoot(page: Page, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    page.locator("main").screenshot(path=str(path))
    print(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2-135m", help="a packaged model (default: smollm2-135m)")
    parser.add_argument("--views", default="", help="comma-separated view ids (default: every tab)")
    parser.add_argument("--langs", default="en,zh", help="examples: en, zh (default: both)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "views")
    parser.add_argument("--width", type=int, default=1440)
    parser.add_argument("--height", type=int, default=1000)
    args = parser.parse_args()
    langs = [lang for lang in args.langs.split(",") if lang]
    unknown = [lang for lang in langs if lang not in EXAMPLES]
    if unknown:
        parser.error(f"unknown example {unknown[0]!r}: choose from {', '.join(EXAMPLES)}")
    wanted = {view for view in args.views.split(",") if view}
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        parser.error("Debian's chromium is not installed (apt-get install chromium)")
    with serve(args.model, free_port()) as base, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
        for lang in langs:
            text, ui_language = EXAMPLES[lang]
            context = browser.new_context(viewport={"width": args.width, "height": args.height}, color_scheme="light")
            context.add_init_script(
                f"localStorage.setItem('attnscope.language', '{ui_language}');"
                "localStorage.setItem('attnscope.theme', 'light');"
                "localStorage.setItem('attnscope.palette', 'red');"
            )
            page = context.new_page()
            page.goto(base)
            page.wait_for_selector("body[data-ready='1']")
            analyse(page, text)
            tabs = page.locator("#tabs [role=tab]").evaluate_all("els => els.map(e => [e.id, e.dataset.view])")
            missing = wanted - {view for _, view in tabs}
            if missing:
                parser.error(f"no such view: {', '.join(sorted(missing))} (views: {', '.join(v for _, v in tabs)})")
            for tab_id, view in tabs:
                if wanted and view not in wanted:
                    continue
                show_view(page, tab_id)
                fill_in(page, view, lang)
                shoot(page, args.out / f"{view}-{lang}.png")
            show_view(page, tabs[0][0])
            page.get_by_test_id("theme-select").select_option("dark")
            settle(page)
            shoot(page, args.out / f"{tabs[0][1]}-{lang}-dark.png")
            context.close()
        browser.close()


if __name__ == "__main__":
    main()
