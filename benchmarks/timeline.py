"""Scrubbing a long generation's timeline in headless Chromium.

``attnscope serve`` (``--model``) generates ``--new`` tokens in the page (the Generate button); then
the timeline is moved step by step over ``--scrubs`` steps spread across the answer, as a user
dragging it does. Each scrub is timed twice: its work (from the range input's ``input`` event until
the handler has redrawn the step tokens, the step diff, the marks and the trajectory and the page's
style and layout are recomputed) and its frame (from the event to the next animation frame: the
loop waits for each frame, so one frame interval, 16.7 ms at 60 Hz, is that measure's floor: the
same wait with nothing to do, timed as often before the scrubs, is printed beside it as the idle
frame). The most DOM elements the page had is recorded. The exact analysis that follows
a pause is not part of a frame.

Usage: python benchmarks/timeline.py [--model smollm2-135m] [--new 2000] [--scrubs 400]
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

SCRUB = """async ([count]) => {
  const range = document.querySelector('[data-testid=timeline]');
  const steps = Number(range.max) + 1;
  const times = [];
  const work = [];
  const idle = []; // the floor: the same wait for the next frame with nothing to do
  for (let i = 0; i < count; i++) {
    const begin = performance.now();
    await new Promise((resolve) => requestAnimationFrame(() => resolve()));
    idle.push(performance.now() - begin);
  }
  let elements = 0;
  for (let i = 0; i < count; i++) {
    const step = Math.round((i * (steps - 1)) / Math.max(1, count - 1));
    const begin = performance.now();
    range.value = String(step);
    range.dispatchEvent(new Event('input'));
    void document.body.offsetHeight; // style and layout of what the handler changed, now
    work.push(performance.now() - begin);
    await new Promise((resolve) => requestAnimationFrame(() => resolve()));
    times.push(performance.now() - begin);
    elements = Math.max(elements, document.getElementsByTagName('*').length);
  }
  return { times, work, idle, elements, steps };
}"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--new", type=int, default=2000)
    parser.add_argument("--scrubs", type=int, default=400)
    parser.add_argument(
        "--prompt",
        default="The history of the city begins with a small settlement on the river, where traders met each spring",
    )
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "attnscope", "serve", "--model", args.model, "--port", str(port), "--quiet"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/api/model", timeout=2).json()["status"] == "ready":
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        chromium = shutil.which("chromium") or shutil.which("chromium-browser")
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("pageerror", lambda error: print(f"page error: {error}", file=sys.stderr))
            page.goto(base)
            page.wait_for_selector("body[data-ready='1']")
            page.fill("[data-testid=prompt-input]", args.prompt)
            page.fill("[data-testid=max-new-tokens]", str(args.new))
            begin = time.perf_counter()
            page.click("[data-testid=generate-button]")
            page.wait_for_function("Number(document.body.dataset.generations || 0) > 0", timeout=3_600_000)
            generated = time.perf_counter() - begin
            error = page.locator("[data-testid=error]")
            if error.is_visible() or page.locator("[data-testid=step-token]").count() == 0:
                raise SystemExit(f"the page could not generate: {error.inner_text()}")
            result = page.evaluate(SCRUB, [args.scrubs])
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=20)
    frame = _percentiles(result["times"])
    work = _percentiles(result["work"])
    idle = _percentiles(result["idle"])
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs; headless Chromium (software rendering); "
        f"{args.model}, {result['steps']} generated tokens (asked {args.new}; generating took {generated:.0f} s "
        "including the page's first analysis)\n"
    )
    print(
        "| scrubs | work p50 ms | work p95 ms | work max ms | frame p50 ms | frame p95 ms "
        "| idle frame p50 ms | idle frame p95 ms | most DOM elements |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    print(
        f"| {len(result['times'])} | {work[0]:.1f} | {work[1]:.1f} | {work[2]:.1f} | {frame[0]:.1f} | {frame[1]:.1f} "
        f"| {idle[0]:.1f} | {idle[1]:.1f} | {result['elements']} |"
    )


def _percentiles(times: list[float]) -> tuple[float, float, float]:
    """p50, p95 and the largest of ``times``."""
    ordered = sorted(times)
    return ordered[len(ordered) // 2], ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))], ordered[-1]


if __name__ == "__main__":
    main()
