"""``list_models()`` (``GET /api/models``) deletes nothing and reads a weight file once per version;
``attnscope models`` sweeps and verifies sizes and SHA-256."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from attnscope.models import cache, list_models
from attnscope.server.app import create_app
from attnscope.server.host import ModelHost
from tests.conftest import tiny
from tests.models.conftest import MB, Sandbox, dead_pid, place_copy

SMOL = "smollm2-135m"


def _leftovers(sandbox: Sandbox) -> list[Path]:
    """What killed installs, conversions and joins leave (their process is gone)."""
    pid = dead_pid()
    left = [
        sandbox.models / f".{SMOL}.{pid}-abcdef.tmp",
        sandbox.cache / "converted" / f".b179c9523d0e6a0f-float32.{pid}-123456.tmp",
        sandbox.cache / "tmp" / f".join.{pid}-fedcba.tmp",
    ]
    for path in left:
        path.mkdir(parents=True)
        (path / "part").write_bytes(b"\0" * MB)
    return left


@pytest.fixture
def hashed(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many SHA-256 computations ran (one per file set hashed), counted from here on."""
    calls: list[int] = []
    real = hashlib.sha256

    def counting(*args: object, **kwargs: object) -> object:
        calls.append(1)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(cache.hashlib, "sha256", counting)
    return calls


def _smol(rows: list[dict[str, object]]) -> dict[str, object]:
    return next(row for row in rows if row["alias"] == SMOL)


def test_listing_deletes_nothing_and_hashes_a_file_once(sandbox: Sandbox, smollm2_file: Path, hashed: list[int]):
    place_copy(sandbox, SMOL, smollm2_file)
    left = _leftovers(sandbox)
    first = _smol(list_models())
    assert (first["state"], first["problem"]) == ("installed", None)
    assert len(hashed) == 1  # verified: the SHA-256 of the new file, once
    for _ in range(3):
        assert _smol(list_models())["state"] == "installed"
    cache._KNOWN.clear()  # another process: the hash index on disk answers
    assert _smol(list_models())["state"] == "installed"
    assert len(hashed) == 1  # later listings only stat the file
    assert all(path.exists() for path in left)  # nothing deleted


def test_listing_with_an_unwritable_cache_still_hashes_once(
    sandbox: Sandbox, smollm2_file: Path, hashed: list[int], monkeypatch: pytest.MonkeyPatch
):
    blocker = sandbox.home.parent / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv("ATTNSCOPE_CACHE", str(blocker / "cache"))  # no index can be written (even as root)
    place_copy(sandbox, SMOL, smollm2_file)
    for _ in range(3):
        assert _smol(list_models())["state"] == "installed"
    assert len(hashed) == 1 and not (blocker / "cache").exists()


def test_get_api_models_deletes_nothing_and_sees_a_changed_byte(sandbox: Sandbox, smollm2_file: Path):
    target = place_copy(sandbox, SMOL, smollm2_file)
    left = _leftovers(sandbox)
    host = ModelHost(loader=lambda spec: tiny(spec.removeprefix("tiny:")))
    host.load("tiny:llama")
    client = TestClient(create_app(host), raise_server_exceptions=False)

    def api_row() -> dict[str, object]:
        response = client.get("/api/models")
        assert response.status_code == 200, response.text
        return _smol(response.json()["models"])

    assert api_row()["state"] == "installed"
    with target.open("r+b") as handle:  # same size, one byte different (a new modification time)
        handle.seek(50 * MB)
        byte = handle.read(1)
        handle.seek(50 * MB)
        handle.write(bytes([byte[0] ^ 0xFF]))
    row = api_row()
    assert row["state"] == "damaged" and str(row["problem"]).startswith("SHA-256 mismatch")
    assert all(path.exists() for path in left)


def test_the_models_command_sweeps_and_verifies_sizes_and_sha256(sandbox: Sandbox, smollm2_file: Path):
    target = place_copy(sandbox, SMOL, smollm2_file)
    left = _leftovers(sandbox)
    assert _smol(list_models())["state"] == "installed"  # the hash is now in the index
    with target.open("r+b") as handle:
        handle.seek(7 * MB)
        byte = handle.read(1)
        handle.seek(7 * MB)
        handle.write(bytes([byte[0] ^ 0xFF]))
    result = sandbox.cli("models")
    assert result.returncode == 0, result.stderr
    assert "SHA-256 mismatch" in result.stdout and f"repair: attnscope models install {SMOL}" in result.stdout
    assert [path for path in left if path.exists()] == []
    assert result.stderr.count("deleted abandoned temporary") == len(left)
