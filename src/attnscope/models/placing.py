"""Putting a verified folder in place of an installed one so that a kill never leaves neither.

:func:`place` moves a verified temporary folder to its final name. When the final name is taken (a
``--force`` reinstall or a repair), the two folders are swapped:

- on Linux in one step, ``renameat2(RENAME_EXCHANGE)``: the new copy takes the final name and the
  old one the temporary's PID-named name, which the next sweep deletes if this process dies first;
- where that is not available (another system, a file system without it), in two renames: the old
  copy first goes to ``.<name>.<pid>-<token>.old`` (a *displaced* copy, a name that
  :func:`attnscope.models.temporaries.sweep` never deletes), then the new copy to the final name,
  then the displaced copy is deleted. :func:`recover` (run by every sweep of the models folder)
  puts a displaced copy of a dead process back when the final name is missing (killed between the
  renames) and deletes it when the final name is present (killed after the second rename).

Either way a kill at any moment leaves the old install or the new one under the final name (or,
between the two fallback renames, the old one under its displaced name until the next run puts it
back), never neither.

Test hook: :data:`_pause` is called with the name of each point between two steps (``exchanged``,
``displaced``, ``placed``). It does nothing; no environment variable or setting reaches it. Fault
tests replace it, inside a child process they start, with a function that waits to be killed.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import sys
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

from attnscope.errors import AttnscopeError
from attnscope.models import temporaries
from attnscope.models.disk import disk_bytes

_DISPLACED = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)-(?P<token>[0-9a-f]+)\.old$")
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2
_UNSUPPORTED = {errno.EINVAL, errno.ENOSYS, errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV}


def _no_pause(point: str) -> None:
    return None


_pause: Callable[[str], None] = _no_pause


def displaced_name(name: str) -> str:
    """A fresh name for the old copy of ``name`` set aside by this process (never swept as a temporary)."""
    return f".{name}.{os.getpid()}-{secrets.token_hex(3)}.old"


@lru_cache(maxsize=1)
def _renameat2() -> Any:
    """libc's ``renameat2`` (Linux, glibc 2.28+ or musl 1.2.2+), or None."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    try:
        function = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    function.restype = ctypes.c_int
    return function


def exchange(first: Path, second: Path) -> bool:
    """Swap the names of two existing paths in one atomic step; False where the system cannot.

    Raises ``FileNotFoundError`` when either is missing, ``OSError`` for other failures.
    """
    function = _renameat2()
    if function is None:
        return False
    import ctypes

    result = function(_AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second), _RENAME_EXCHANGE)
    if result == 0:
        return True
    code = ctypes.get_errno()
    if code in _UNSUPPORTED:
        return False
    raise OSError(code, os.strerror(code), str(second))


def place(folder: Path, final: Path) -> None:
    """Move the verified ``folder`` to ``final``; an install already there is replaced, then deleted.

    Concurrent installs of the same model each place their own verified copy; the last one stays.
    """
    for _ in range(10):
        if not os.path.lexists(final):
            try:
                os.rename(folder, final)
                return
            except OSError as error:
                if error.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                    raise
                continue  # a concurrent install placed its own copy in between: swap with it
        try:
            swapped = exchange(folder, final)
        except FileNotFoundError:  # a concurrent remove or install got there first
            continue
        if swapped:
            _pause("exchanged")  # the new copy is in place; the old one is the PID-named temporary
            temporaries.remove(folder)
            return
        if _replace_in_two_steps(folder, final):
            return
    raise AttnscopeError(f"could not move the new install into {final}: other processes keep replacing it")


def _replace_in_two_steps(folder: Path, final: Path) -> bool:
    """Set the install at ``final`` aside under a displaced name, move ``folder`` to ``final`` and delete
    the displaced copy; False when another process changed ``final`` in between (try again)."""
    displaced = final.parent / displaced_name(final.name)
    try:
        os.rename(final, displaced)
    except FileNotFoundError:
        return False
    _pause("displaced")  # nothing under the final name: a kill now leaves the old copy displaced
    try:
        os.rename(folder, final)
    except OSError as error:
        if error.errno in (errno.EEXIST, errno.ENOTEMPTY):  # a concurrent install placed its verified copy
            temporaries.discard(displaced)
            return False
        with contextlib.suppress(OSError):  # put the old copy back; if that fails, recover() will
            os.rename(displaced, final)
        raise
    _pause("placed")  # the new copy is in place; the old one is still displaced
    temporaries.discard(displaced)
    return True


def recover(folder: Path) -> list[temporaries.Swept]:
    """Deal with displaced copies in ``folder`` whose process is gone; the ones deleted.

    A displaced copy goes back under its final name when that name is missing (the newest first, if
    several); otherwise it is deleted. Copies of live processes are left alone (an install in progress).
    """
    try:
        names = [entry.name for entry in os.scandir(folder)]
    except OSError:
        return []
    abandoned = []
    for name in names:
        match = _DISPLACED.match(name)
        if match and not temporaries.pid_alive(int(match["pid"])):
            path = folder / name
            with contextlib.suppress(OSError):
                abandoned.append((path.lstat().st_ctime_ns, path, folder / match["name"]))
    deleted: list[temporaries.Swept] = []
    for _, path, final in sorted(abandoned, reverse=True):  # newest displaced copy first
        if not os.path.lexists(final):
            with contextlib.suppress(OSError):
                os.rename(path, final)  # killed between the renames: the old copy goes back
        if not os.path.lexists(final) or not os.path.lexists(path):  # kept for a later run, or put back
            continue
        size = disk_bytes(path)
        temporaries.discard(path)  # the final name holds a newer copy
        if not os.path.lexists(path):
            deleted.append(temporaries.Swept(path, size))
    return deleted
