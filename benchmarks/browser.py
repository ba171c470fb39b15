"""Frame times of the web app in headless Chromium: panning/zooming a long heatmap, scrolling a long token strip.

1. ``heatmap``: ``attnscope serve`` (``--model``) analyses a text of ``--tokens`` tokens; the heatmap tab
   (tiles, colour scaled to the map maximum) is zoomed in with the mouse wheel and panned by dragging
   for ``--seconds``; every ``requestAnimationFrame`` interval is recorded.
2. ``strip``: the app's virtualised token strip (``/static/virtual.js``, the module the app uses) with
   ``--strip-tokens`` synthetic tokens, scrolled at a steady 150 px per frame; frame intervals, the most
   DOM elements seen, and the time of a hover and a click handler on a mounted token.

Frame intervals include everything the page does in a frame (tile decoding runs in a Web Worker).
Headless Chromium without a GPU rasterises in software: a lower bound on what a desktop browser does.

Usage: python benchmarks/browser.py [--model smollm2-135m] [--tokens 8192] [--strip-tokens 50000]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import socket
import subprocess
import sys
import time

import httpx

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from capture import text_of_tokens

RECORD = """() => { window.__frames = []; let last = performance.now();
  const tick = (t) => { window.__frames.push(t - last); last = t; if (!window.__stop) requestAnimationFrame(tick); };
  window.__stop = false; requestAnimationFrame(tick); }"""


def stats(frames: list[float]) -> str:
    ordered = sorted(frames[1:])  # the first interval includes setup
    p50 = ordered[len(ordered) // 2]
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return f"{len(ordered)} | {p50:.1f} | {p95:.1f} | {ordered[-1]:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--tokens", type=int, default=8192)
    parser.add_argument("--strip-tokens", type=int, default=50_000)
    parser.add_argument("--seconds", type=float, default=6.0)
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    import attnscope

    model = attnscope.load_model(args.model)
    text = text_of_tokens(model.tokenizer, min(args.tokens, (model.arch.max_positions or args.tokens)))
    del model
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen(
        ["attnscope", "serve", "--model", args.model, "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                if httpx.get(f"{base}/api/model", timeout=2).json()["status"] == "ready":
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        chromium = shutil.which("chromium") or shutil.which("chromium-browser")
        print(
            f"machine: {platform.machine()}, {os.cpu_count()} CPUs; headless Chromium ({chromium}), "
            "software rendering, viewport 1280x900\n"
        )
        print("| scenario | frames | p50 ms | p95 ms | max ms | notes |")
        print("|---|---:|---:|---:|---:|---|")
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(base)
            page.wait_for_selector("body[data-ready='1']")

            # 1. heatmap
            page.get_by_test_id("prompt-input").fill(text)
            begin = time.perf_counter()
            page.get_by_test_id("prompt-input").press("Control+Enter")
            page.wait_for_function("Number(document.body.dataset.analyses || 0) > 0", timeout=1_800_000)
            analysis_s = time.perf_counter() - begin
            tokens = page.locator("[data-testid=token]").count()
            page.get_by_test_id("scale-select").select_option("minmax")
            page.get_by_role("tab", name="Heatmap").click()
            page.wait_for_function(
                "() => { const c = document.querySelector('[data-testid=heatmap]');"
                " return Number(c.dataset.tiles || 0) > 0 && c.dataset.missing === '0'; }",
                timeout=600_000,
            )
            canvas = page.get_by_test_id("heatmap")
            box = canvas.bounding_box()
            page.evaluate(RECORD)
            end = time.perf_counter() + args.seconds
            step = 0
            while time.perf_counter() < end:
                x = box["x"] + box["width"] * (0.3 + 0.4 * ((step % 20) / 20))
                y = box["y"] + box["height"] * (0.3 + 0.4 * ((step % 13) / 13))
                page.mouse.move(x, y)
                if step % 10 < 5:
                    page.mouse.wheel(0, -240 if (step // 10) % 2 == 0 else 200)
                else:
                    page.mouse.down()
                    page.mouse.move(x + 60, y + 40, steps=4)
                    page.mouse.up()
                step += 1
            page.evaluate("window.__stop = true")
            frames = page.evaluate("window.__frames")
            dom = page.evaluate("document.getElementsByTagName('*').length")
            moved = int(canvas.get_attribute("data-bytes"))
            print(
                f"| heatmap zoom + pan, {args.tokens} tokens | {stats(frames)} | analysis {analysis_s:.0f} s; "
                f"{moved / 1e6:.1f} MB of tiles in {step} gestures; DOM {dom} elements; {tokens} tokens mounted |",
                flush=True,
            )

            # 2. token strip with synthetic tokens
            page.goto(base)
            page.wait_for_selector("body[data-ready='1']")
            setup = """async (n) => {
              const { mountVirtualStrip } = await import('/static/virtual.js');
              const strip = document.getElementById('strip');
              strip.closest('section').hidden = false;
              const words = ['the', ' river', ' city', ' traded', ' salt', ' and', ' grain', '.', '\\n'];
              const make = (i) => { const s = document.createElement('span'); s.className = 'tok';
                s.dataset.tokenIndex = String(i); s.textContent = words[i % words.length];
                s.style.setProperty('--a', String((i * 7919 % 100) / 100));
                s.addEventListener('mouseenter', () => { window.__hovered = i; });
                s.addEventListener('click', () => { window.__clicked = i; });
                return [s]; };
              const t0 = performance.now();
              mountVirtualStrip(strip, n, make, []);
              window.__maxDom = document.getElementsByTagName('*').length;
              return performance.now() - t0; }"""
            mount_ms = page.evaluate(setup, args.strip_tokens)
            page.evaluate(RECORD)
            page.evaluate(
                """(seconds) => new Promise((done) => { const strip = document.getElementById('strip');
              const stop = performance.now() + seconds * 1000;
              const tick = () => { strip.scrollTop += 150;
                window.__maxDom = Math.max(window.__maxDom, document.getElementsByTagName('*').length);
                if (performance.now() < stop && strip.scrollTop + strip.clientHeight < strip.scrollHeight) {
                  requestAnimationFrame(tick); } else { done(); } };
              requestAnimationFrame(tick); })""",
                args.seconds,
            )
            page.evaluate("window.__stop = true")
            frames = page.evaluate("window.__frames")
            max_dom = page.evaluate("window.__maxDom")
            reached = page.evaluate("document.getElementById('strip').dataset.mountedBlocks")
            token = page.locator("#strip .tok").nth(5)
            start = time.perf_counter()
            token.hover()
            page.wait_for_function("window.__hovered !== undefined")
            hover_ms = (time.perf_counter() - start) * 1e3
            start = time.perf_counter()
            token.click()
            page.wait_for_function("window.__clicked !== undefined")
            click_ms = (time.perf_counter() - start) * 1e3
            print(
                f"| token strip scroll, {args.strip_tokens:,} tokens | {stats(frames)} | mount {mount_ms:.0f} ms; "
                f"max DOM {max_dom} elements; blocks {reached} at the end; hover {hover_ms:.0f} ms, "
                f"click {click_ms:.0f} ms (round trip through Playwright) |",
                flush=True,
            )
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
