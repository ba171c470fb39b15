"""Regenerate docs/screenshot.png: the token view of the Chinese example on the default model.

Usage: .venv/bin/python scripts/screenshot.py [--model qwen2.5-coder-0.5b] [--text 我爱中国，他的首都在于]
Needs Debian's chromium (and fonts-noto-cjk for Chinese glyphs).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
from playwright.sync_api import sync_playwright


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="qwen2.5-coder-0.5b")
    parser.add_argument("--text", default="我爱中国，他的首都在于")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "docs" / "screenshot.png"))
    args = parser.parse_args()
    server = subprocess.Popen(
        [sys.executable, "-m", "attnscope", "serve", "--model", args.model, "--port", str(args.port)]
    )
    base = f"http://127.0.0.1:{args.port}"
    try:
        for _ in range(600):
            try:
                if httpx.get(f"{base}/api/model", timeout=2).json()["status"] == "ready":
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=shutil.which("chromium"), args=["--no-sandbox", "--disable-gpu"]
            )
            page = browser.new_page(viewport={"width": 1200, "height": 760})
            page.goto(base)
            page.wait_for_selector("body[data-ready='1']")  # the method catalogue and the model list are in
            page.get_by_test_id("prompt-input").fill(args.text)
            page.get_by_test_id("prompt-input").press("Control+Enter")
            page.wait_for_function("Number(document.body.dataset.analyses || 0) > 0")
            page.get_by_test_id("prediction").hover()  # the top-10 candidates, as percentages
            page.wait_for_selector("[data-testid=candidates]")
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=args.out)
            browser.close()
    finally:
        server.terminate()
        server.wait()
    print(args.out)


if __name__ == "__main__":
    main()
