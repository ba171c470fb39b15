"""A real ``attnscope serve`` on 127.0.0.1 and Debian's Chromium driven by Playwright."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import packaged
from tests.server.test_load import free_port

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SERVED_MODEL = "smollm2-135m"


def _require(condition: bool, message: str) -> None:
    if condition:
        return
    if os.environ.get("ATTNSCOPE_REQUIRE_BROWSER") == "1":
        pytest.fail(message)
    pytest.skip(message)


@contextlib.contextmanager
def serving(argv: list[str], port: int) -> Iterator[str]:
    """Run ``python argv`` (an ``attnscope serve`` on ``port``) until its model is ready; yields its
    base address and terminates it afterwards."""
    process = subprocess.Popen([sys.executable, *argv], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"attnscope serve exited: {process.stdout.read().decode()}")
            try:
                if httpx.get(f"{base}/api/model", timeout=2).json()["status"] == "ready":
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        else:
            raise RuntimeError("attnscope serve did not become ready")
        yield base
    finally:
        process.terminate()
        process.wait(timeout=20)


@pytest.fixture(scope="session")
def server():
    packaged(SERVED_MODEL)
    port = free_port()
    with serving(["-m", "attnscope", "serve", "--model", SERVED_MODEL, "--port", str(port)], port) as base:
        yield base


@pytest.fixture(scope="session")
def browser():
    _require(CHROMIUM is not None, "Debian's chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--disable-quic",
            ],
        )
        yield browser
        browser.close()


@contextlib.contextmanager
def opened(browser, base: str) -> Iterator:
    """A fresh browser context's page on the app at ``base``, ready (its model picker filled)."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.goto(base)
    page.wait_for_selector("body[data-ready='1']")
    page.wait_for_function("document.querySelectorAll('#model-select option').length > 0")
    try:
        yield page
    finally:
        context.close()


@pytest.fixture
def page(browser, server):
    with opened(browser, server) as page:
        yield page


def screenshot(page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
