"""PID-named temporaries: how attnscope writes big things so that a kill never leaves a half result.

Every install, conversion, join and index write goes to a temporary beside its final place, named
``.<name>.<pid>-<token>.tmp`` (``<pid>``: the writing process, ``<token>``: a few random hex digits
so that threads of one process never collide), and is renamed into place only when complete
(``os.replace``/``os.rename``, atomic on one file system). A temporary whose process is no longer
alive was abandoned (killed, crashed, power cut) and :func:`sweep` deletes it; one whose process is
alive is in progress and is left alone.

Temporaries written by attnscope versions before this scheme carry no PID; :func:`sweep` deletes
those when a caller recognises their name and they have not changed for :data:`LEGACY_AGE_S`.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from attnscope.models.disk import disk_bytes

_PATTERN = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)-(?P<token>[0-9a-f]+)\.tmp$")
LEGACY_AGE_S = 3600.0  # an old-style temporary untouched this long is abandoned (a conversion takes < 1 min)


def temporary_name(name: str) -> str:
    """A fresh temporary name for ``name``, carrying this process's PID."""
    return f".{name}.{os.getpid()}-{secrets.token_hex(3)}.tmp"


def make_dir(parent: Path, name: str) -> Path:
    """Create (exclusively) and return an empty temporary folder for ``name`` in ``parent``."""
    parent.mkdir(parents=True, exist_ok=True)
    while True:
        path = parent / temporary_name(name)
        try:
            path.mkdir()
        except FileExistsError:
            continue
        return path


def make_file(parent: Path, name: str) -> tuple[int, Path]:
    """Create (exclusively) a temporary file for ``name`` in ``parent``: its open descriptor and path."""
    parent.mkdir(parents=True, exist_ok=True)
    while True:
        path = parent / temporary_name(name)
        try:
            return os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY | getattr(os, "O_BINARY", 0), 0o644), path
        except FileExistsError:
            continue


def writer_pid(name: str) -> int | None:
    """The PID in a temporary's name, or None when ``name`` is not a PID-named temporary."""
    match = _PATTERN.match(name)
    return int(match["pid"]) if match else None


def pid_alive(pid: int) -> bool:
    """Whether a process with this PID exists and has not exited (a zombie counts as exited).

    A PID reused by an unrelated process reads as alive: its temporary is then kept until a later run.
    """
    if pid <= 0:
        return False
    if pid == os.getpid():
        return True
    if sys.platform == "win32":  # os.kill(pid, 0) would terminate the process on Windows
        import ctypes

        kernel32 = ctypes.windll.kernel32
        handle = kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
        if not handle:
            return False
        code = ctypes.c_ulong()
        kernel32.GetExitCodeProcess(handle, ctypes.byref(code))
        kernel32.CloseHandle(handle)
        return code.value == 259  # STILL_ACTIVE
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: another user's live process
        return True
    with contextlib.suppress(OSError, IndexError):  # Linux: an exited child not yet reaped is a zombie
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    return True


def remove(path: Path) -> None:
    """Delete a file or a folder tree; what cannot be deleted stays (a later sweep tries again)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            path.unlink()


def discard(path: Path) -> None:
    """Delete ``path`` so that it vanishes at once: rename it to a temporary first, then delete that.

    A kill in the middle leaves an abandoned temporary (swept later), never a half-deleted folder
    under the real name.
    """
    trash = path.parent / temporary_name(path.name)
    try:
        os.rename(path, trash)
    except FileNotFoundError:
        return
    except OSError:
        trash = path
    remove(trash)


@dataclass(frozen=True)
class Swept:
    """One abandoned temporary that :func:`sweep` deleted."""

    path: Path
    bytes: int


def sweep(folder: Path, *, legacy: Callable[[str], bool] | None = None) -> list[Swept]:
    """Delete the abandoned temporaries directly inside ``folder``; what was deleted.

    PID-named temporaries go when their process is gone. Names that ``legacy`` accepts (old-style
    temporaries without a PID) go when untouched for :data:`LEGACY_AGE_S`. Nothing else is touched.
    """
    swept: list[Swept] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return swept
    now = time.time()
    for entry in entries:
        pid = writer_pid(entry.name)
        if pid is not None:
            abandoned = not pid_alive(pid)
        elif legacy is not None and legacy(entry.name):
            abandoned = now - _newest_mtime(Path(entry.path)) > LEGACY_AGE_S
        else:
            continue
        if abandoned:
            path = Path(entry.path)
            size = disk_bytes(path)
            remove(path)
            if not path.exists():
                swept.append(Swept(path, size))
    return swept


def _newest_mtime(path: Path) -> float:
    try:
        newest = path.lstat().st_mtime
        if path.is_dir() and not path.is_symlink():
            for child in path.rglob("*"):
                with contextlib.suppress(OSError):
                    newest = max(newest, child.lstat().st_mtime)
    except OSError:
        return time.time()  # vanished or unreadable: not ours to judge now
    return newest
