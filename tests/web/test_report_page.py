"""The page's Report button, in Chromium: a zip of the report downloads, signed with the server's key
when "signed" is ticked; the signature checked by the `attnscope verify` command."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

from attnscope.governance.keys import generate_keys
from tests.conftest import ENGLISH
from tests.web.conftest import screenshot
from tests.web.test_privacy_page import analyze


def test_the_report_button_downloads_a_signed_report(page, server, tmp_path):
    keys = Path(os.environ["ATTNSCOPE_HOME"]) / "keys"  # the served app's data folder (tests/conftest.py)
    if not (keys / "attnscope-signing.pub").exists():
        generate_keys(keys, None)
    analyze(page, ENGLISH)
    page.check("[data-testid=report-sign]")
    with page.expect_download(timeout=600_000) as download:
        page.click("[data-testid=report-button]")
    path = tmp_path / "report.zip"
    download.value.save_as(path)
    with zipfile.ZipFile(path) as archive:
        assert sorted(archive.namelist()) == ["report.html", "report.intoto.json", "report.json"]
        archive.extractall(tmp_path / "report")
    verify = [sys.executable, "-m", "attnscope", "verify", str(tmp_path / "report" / "report.intoto.json")]
    verify += ["--key", str(keys / "attnscope-signing.pub")]
    done = subprocess.run(verify, capture_output=True, text=True)
    assert done.returncode == 0 and "verified" in done.stdout, done.stderr
    assert page.locator("[data-testid=error]").is_hidden()
    screenshot(page, "report-downloaded")
