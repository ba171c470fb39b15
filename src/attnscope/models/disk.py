"""Disk use, measured like ``du``: the bytes that deleting a path would free."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path


def _allocated(st: os.stat_result) -> int:
    blocks = getattr(st, "st_blocks", None)
    return int(blocks) * 512 if blocks is not None else int(st.st_size)


def disk_bytes(path: Path, seen: set[tuple[int, int]] | None = None) -> int:
    """Bytes allocated under ``path`` (a file or a folder tree; 0 when it does not exist).

    Like ``du``: allocated blocks, symbolic links not followed, a hard-linked file counted once
    (pass the same ``seen`` set to several calls to count a file shared between them once).
    """
    seen = set() if seen is None else seen
    total = 0
    stack = [path]
    while stack:
        current = stack.pop()
        try:
            st = current.lstat()
        except OSError:
            continue
        key = (st.st_dev, st.st_ino)
        if key in seen:
            continue
        seen.add(key)
        total += _allocated(st)
        if current.is_dir() and not current.is_symlink():
            try:
                stack.extend(Path(entry.path) for entry in os.scandir(current))
            except OSError:
                continue
    return total


def files_disk_bytes(paths: Iterable[Path], seen: set[tuple[int, int]] | None = None) -> int:
    """:func:`disk_bytes` summed over ``paths``, each file counted once."""
    seen = set() if seen is None else seen
    return sum(disk_bytes(path, seen) for path in paths)


def human_bytes(count: int) -> str:
    """``491 MB``, ``2.4 GB``, ``12 kB``: decimal units, as package indexes and ``ls -h --si`` write them."""
    value = float(count)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            if unit == "B":
                return f"{int(value)} B"
            return f"{value:.1f} {unit}" if value < 10 else f"{value:.0f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")
