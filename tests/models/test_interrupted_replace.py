"""A reinstall (``--force``, or a repair) killed while it replaces the installed copy leaves the old copy
or the new one, never neither: the next run has the model installed and verified.

The installer runs as a real process, killed with SIGKILL at a point between two steps of
``placing.place``. It reaches that point deterministically through ``placing._pause`` (a no-op in
attnscope), which the child process below replaces with a wait to be killed; its pip run is replaced
by a copy of the local GGUF file (the download is not what is tested).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from attnscope.models import placing, temporaries
from tests.models.conftest import Sandbox, dead_pid, place_copy, wait_for

SMOL = "smollm2-135m"
MARKER = "attnscope-install.json"  # written by the installer into the new copy only

CHILD = """
import os, shutil, sys, time
from pathlib import Path
from attnscope.models import install, placing
from attnscope.models.catalog import require_entry

source, flag, point, way = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], sys.argv[4]
entry = require_entry("smollm2-135m")

def pip_from_local_copy(_entry, target, _output):
    placed = entry.files[0].in_folder(target)
    placed.parent.mkdir(parents=True)
    shutil.copyfile(source, placed)

def wait_to_be_killed(reached):
    if reached == point:
        flag.write_text(str(os.getpid()))
        time.sleep(600)

install._run_pip = pip_from_local_copy
placing._pause = wait_to_be_killed
if way == "two-renames":
    placing.exchange = lambda first, second: False  # as on a system without renameat2
install.install(entry, force=True)
raise SystemExit("the install ended without reaching " + point)
"""


def _exchange_works(tmp_path: Path) -> bool:
    first, second = tmp_path / "x-first", tmp_path / "x-second"
    first.mkdir()
    second.mkdir()
    (first / "a").touch()
    return placing.exchange(first, second) and (second / "a").exists()


def _kill_at(sandbox: Sandbox, source: Path, point: str, way: str, tmp_path: Path) -> int:
    """Run a forced reinstall until it reaches ``point``, SIGKILL it there; its PID."""
    flag = tmp_path / f"reached-{point}"
    log = (tmp_path / f"install-{point}.log").open("w")
    args = [str(source), str(flag), point, way]
    process = subprocess.Popen([sys.executable, "-c", CHILD, *args], env=sandbox.env, stdout=log, stderr=log)
    try:
        wait_for(flag.exists, timeout=120, what=f"the installer to reach {point!r}", process=process)
        process.send_signal(signal.SIGKILL)
    finally:
        process.kill()
        process.wait()
        log.close()
    assert process.returncode == -signal.SIGKILL, (tmp_path / f"install-{point}.log").read_text()
    return process.pid


@pytest.mark.parametrize(
    ("way", "point", "survivor"),
    [
        ("exchange", "exchanged", "new"),  # Linux: swapped in one step, old copy not yet deleted
        ("two-renames", "displaced", "old"),  # old copy set aside, nothing under the final name
        ("two-renames", "placed", "new"),  # new copy in place, old copy still set aside
    ],
)
def test_a_reinstall_killed_between_two_steps_leaves_the_old_or_the_new_copy(
    sandbox: Sandbox, smollm2_file: Path, tmp_path: Path, way: str, point: str, survivor: str
):
    if way == "exchange" and not _exchange_works(tmp_path):
        pytest.skip("renameat2(RENAME_EXCHANGE) is not available here")
    final = sandbox.models / SMOL
    place_copy(sandbox, SMOL, smollm2_file)  # the good install, without the installer's marker
    assert sandbox.rows()[SMOL]["state"] == "installed"

    pid = _kill_at(sandbox, smollm2_file, point, way, tmp_path)

    left = {p.name for p in sandbox.models.iterdir()}
    old_copies = {name for name in left if name.endswith(".old")}  # set aside, never swept
    temporaries_left = {name for name in left if temporaries.writer_pid(name) == pid}
    if point == "displaced":  # the reviewer's case: a kill between the renames, nothing under the final name
        assert SMOL not in left and len(old_copies) == 1 and len(temporaries_left) == 1  # old; new
    elif point == "placed":
        assert (final / MARKER).exists() and len(old_copies) == 1 and not temporaries_left
    else:  # exchanged: the old copy has the temporary's name
        assert (final / MARKER).exists() and not old_copies and len(temporaries_left) == 1
    assert left - {SMOL} == old_copies | temporaries_left  # nothing else
    assert all(name.startswith(f".{SMOL}.{pid}-") for name in old_copies)
    (sandbox.cache / "hashes.json").unlink(missing_ok=True)  # the next run hashes the files again

    rows = sandbox.rows()  # the next run: `attnscope models --json`
    assert (rows[SMOL]["state"], rows[SMOL]["problem"]) == ("installed", None)
    assert [p.name for p in sandbox.models.iterdir()] == [SMOL]  # nothing else left behind
    assert (final / MARKER).exists() == (survivor == "new")
    again = sandbox.cli("models", "install", SMOL)
    assert again.returncode == 0 and "already installed and verified" in again.stderr, again.stderr


def test_a_displaced_copy_of_a_live_installer_is_left_alone(sandbox: Sandbox, smollm2_file: Path, tmp_path: Path):
    """While an installer is between the renames, another run neither deletes nor moves its old copy."""
    place_copy(sandbox, SMOL, smollm2_file)
    flag = tmp_path / "reached"
    log = (tmp_path / "install.log").open("w")
    args = [str(smollm2_file), str(flag), "displaced", "two-renames"]
    process = subprocess.Popen([sys.executable, "-c", CHILD, *args], env=sandbox.env, stdout=log, stderr=log)
    try:
        wait_for(flag.exists, timeout=120, what="the installer to set the old copy aside", process=process)
        during = sorted(p.name for p in sandbox.models.iterdir())  # the old copy set aside; the new one
        assert len(during) == 2 and SMOL not in during
        listed = sandbox.cli("models", "--json")  # sweeps, as every `attnscope models` does
        assert listed.returncode == 0, listed.stderr
        assert sorted(p.name for p in sandbox.models.iterdir()) == during
        assert temporaries.pid_alive(process.pid) and int(flag.read_text()) == process.pid
    finally:
        process.kill()
        process.wait()
        log.close()
    assert sandbox.rows()[SMOL]["state"] == "installed"  # once it is gone, the old copy goes back
    assert [p.name for p in sandbox.models.iterdir()] == [SMOL]


def test_recover_puts_back_the_newest_displaced_copy_and_deletes_the_rest(tmp_path: Path):
    pid = dead_pid()
    older, newer = (tmp_path / f".m.{pid}-{token}.old" for token in ("bbbbbb", "aaaaaa"))
    for path in (older, newer):  # set aside in this order (their change times say so)
        path.mkdir()
        (path / "weights").write_text(path.name)
        time.sleep(0.05)
    swept = placing.recover(tmp_path)
    assert (tmp_path / "m" / "weights").read_text() == newer.name
    assert [s.path for s in swept] == [older] and not older.exists()
    assert {p.name for p in tmp_path.iterdir()} == {"m"}
