"""A sandbox for install, removal and fault tests: its own data folder and cache, real processes.

The sandbox sets ``ATTNSCOPE_HOME`` and ``ATTNSCOPE_CACHE`` to temporary folders and
``ATTNSCOPE_MODELS_ONLY_HOME=1`` (in this process and in the environment of the processes it starts),
so nothing here sees, changes or removes the models installed in the Python environment or the
user's cache that the rest of the suite loads.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from attnscope.models.catalog import require_entry

T = TypeVar("T")
MB = 1_000_000


@dataclass
class Sandbox:
    home: Path
    cache: Path
    env: dict[str, str]

    @property
    def models(self) -> Path:
        return self.home / "models"

    def cli(
        self, *args: str, env: dict[str, str] | None = None, timeout: float = 600
    ) -> subprocess.CompletedProcess[str]:
        """``attnscope ARGS`` as a real process in the sandbox."""
        return subprocess.run(
            [sys.executable, "-m", "attnscope", *args],
            capture_output=True,
            text=True,
            encoding="utf-8",
            timeout=timeout,
            check=False,
            env=env or self.env,
        )

    def rows(self, env: dict[str, str] | None = None) -> dict[str, dict[str, Any]]:
        """``attnscope models --json`` by alias."""
        result = self.cli("models", "--json", env=env)
        assert result.returncode == 0, result.stderr
        body = json.loads(result.stdout)
        assert body["schema_version"] == 1 and body["result"] == "models"
        return {row["alias"]: row for row in body["models"]}


@pytest.fixture
def sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Sandbox:
    home, cache = tmp_path / "home", tmp_path / "cache"
    settings = {
        "ATTNSCOPE_HOME": str(home),
        "ATTNSCOPE_CACHE": str(cache),
        "ATTNSCOPE_MODELS_ONLY_HOME": "1",
        "PYTHONIOENCODING": "utf-8",
    }
    for key, value in settings.items():
        monkeypatch.setenv(key, value)
    return Sandbox(home, cache, {**os.environ, **settings})


@pytest.fixture(scope="session")
def smollm2_file() -> Path:
    """The installed SmolLM2 GGUF file (wherever the suite's models are), found outside any sandbox."""
    paths = require_entry("smollm2-135m").located_files()
    if paths is None:
        message = "smollm2-135m is not installed (attnscope models install smollm2-135m)"
        if os.environ.get("ATTNSCOPE_REQUIRE_MODELS") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return paths[0]


def place_copy(sandbox: Sandbox, alias: str, source: Path, *, size: int | None = None) -> Path:
    """A data-folder install of ``alias`` made by copying ``source`` (its first ``size`` bytes, if given)
    into the place ``pip install --target`` would put it; the copied file's path."""
    spec = require_entry(alias).files[0]
    target = sandbox.models / alias / spec.module / spec.relative_path
    target.parent.mkdir(parents=True)
    if size is None:
        shutil.copyfile(source, target)
    else:
        with source.open("rb") as read, target.open("wb") as write:
            write.write(read.read(size))
    return target


def wait_for(
    check: Callable[[], T | None], *, timeout: float, what: str, process: subprocess.Popen[Any] | None = None
) -> T:
    """Poll ``check`` every 10 ms until it returns something truthy; fail after ``timeout`` seconds or
    when ``process`` ends first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        if process is not None and process.poll() is not None:
            pytest.fail(f"the process ended (exit {process.returncode}) before {what}")
        time.sleep(0.01)
    pytest.fail(f"timed out after {timeout} s waiting for {what}")


def kill_midway(
    process: subprocess.Popen[Any], half_written: Callable[[], Path | None], *, timeout: float, what: str, log: Any
) -> Path:
    """SIGKILL ``process`` as soon as ``half_written`` finds its temporary; returns that temporary.
    The process is reaped and ``log`` closed whatever happens."""
    try:
        partial = wait_for(half_written, timeout=timeout, what=what, process=process)
        process.send_signal(signal.SIGKILL)
    finally:
        process.kill()
        process.wait()
        log.close()
    assert process.returncode == -signal.SIGKILL
    return partial


def dead_pid() -> int:
    """The PID of a process that has exited and been reaped."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid
