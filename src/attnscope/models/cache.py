"""The user cache: verified file hashes and one-time GGUF -> safetensors conversions.

Everything lives under ``$ATTNSCOPE_CACHE`` (default ``$XDG_CACHE_HOME/attnscope`` or
``~/.cache/attnscope``), never inside the installed package. Writes are atomic (a PID-named temporary,
see :mod:`attnscope.models.temporaries`, renamed into place), so an interrupted conversion never leaves
a half-written model that a later load would trust, and :func:`sweep_abandoned` deletes what a killed
writer left behind.

Layout: ``hashes.json`` (the stat-keyed hash index), ``converted/<sha256[:16]>-<dtype>/`` (one
safetensors conversion of a GGUF file per dtype), ``tmp/`` (GGUF parts joined for one load).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
from collections.abc import Iterable
from pathlib import Path

from attnscope.models import temporaries

_BLOCK = 4 * 1024 * 1024
# This process's copy of the index: a read-only or unwritable cache still hashes a file once per process.
_KNOWN: dict[str, str] = {}


def cache_dir() -> Path:
    root = os.environ.get("ATTNSCOPE_CACHE")
    if root:
        return Path(root)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "attnscope"


def _hash_index_path() -> Path:
    return cache_dir() / "hashes.json"


def _stat_key(paths: Iterable[Path]) -> str:
    parts = []
    for path in paths:
        st = path.stat()
        parts.append(f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}")
    return "\n".join(parts)


def _read_index() -> dict[str, str]:
    try:
        data = json.loads(_hash_index_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_index(index: dict[str, str]) -> None:
    with contextlib.suppress(OSError):  # a read-only cache only costs re-hashing next time
        write_text_atomic(_hash_index_path(), json.dumps(index, indent=0, sort_keys=True))


def files_sha256(paths: list[Path], *, use_cache: bool = True) -> str:
    """SHA-256 of the files' bytes concatenated in order (one file: its plain SHA-256).

    Remembered per (path, size, mtime), in the index and in this process, so that a verified
    multi-hundred-MB file is hashed once. ``use_cache=False`` neither consults nor fills either.
    """
    key = _stat_key(paths)
    if use_cache:
        known = _KNOWN.get(key) or _read_index().get(key)
        if known:
            _KNOWN[key] = known
            return known
    digest = hashlib.sha256()
    for path in paths:
        with path.open("rb") as handle:
            while block := handle.read(_BLOCK):
                digest.update(block)
    value = digest.hexdigest()
    if use_cache:
        _KNOWN[key] = value
        index = _read_index()
        index[key] = value
        _write_index(index)
    return value


def remember_sha256(paths: list[Path], value: str) -> None:
    """Record ``value`` as the SHA-256 of ``paths`` as they are now (after verifying them elsewhere)."""
    key = _stat_key(paths)
    _KNOWN[key] = value
    index = _read_index()
    index[key] = value
    _write_index(index)


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a PID-named temporary renamed into place."""
    fd, tmp = temporaries.make_file(path.parent, path.name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def concatenate(parts: list[Path], target: Path) -> None:
    """Join ``parts`` into ``target`` (through a PID-named temporary renamed into place)."""
    fd, tmp = temporaries.make_file(target.parent, target.name)
    try:
        with os.fdopen(fd, "wb") as out:
            for part in parts:
                with part.open("rb") as handle:
                    shutil.copyfileobj(handle, out, _BLOCK)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def joins_dir() -> Path:
    """Where multi-part GGUF files are joined for one load (each join in its own temporary folder)."""
    return cache_dir() / "tmp"


def conversions_dir() -> Path:
    return cache_dir() / "converted"


def conversion_dir(source_sha256: str, dtype_name: str) -> Path:
    return conversions_dir() / f"{source_sha256[:16]}-{dtype_name}"


def conversion_dirs(source_sha256: str) -> list[Path]:
    """Every finished or stale conversion of ``source_sha256`` (one per dtype); temporaries excluded."""
    try:
        return sorted(p for p in conversions_dir().glob(f"{source_sha256[:16]}-*") if p.is_dir())
    except OSError:
        return []


# Temporaries of attnscope versions before PID-named ones (tempfile.mkstemp/mkdtemp names).
_LEGACY_INDEX = re.compile(r"^\.hashes\.json\.[a-z0-9_]{8}\.tmp$")
_LEGACY_CONVERSION = re.compile(r"^\.[0-9a-f]{16}-[a-z0-9]+\.[a-z0-9_]{8}$")
_LEGACY_JOIN = re.compile(r"^join-[a-z0-9_]{8}$")


def sweep_abandoned() -> list[temporaries.Swept]:
    """Delete what killed writers left in the cache: conversions, joins and hash-index temporaries."""
    return [
        *temporaries.sweep(cache_dir(), legacy=lambda name: bool(_LEGACY_INDEX.match(name))),
        *temporaries.sweep(conversions_dir(), legacy=lambda name: bool(_LEGACY_CONVERSION.match(name))),
        *temporaries.sweep(joins_dir(), legacy=lambda name: bool(_LEGACY_JOIN.match(name))),
    ]


CONVERSION_MARKER = "attnscope-conversion.json"


def read_conversion(folder: Path, source_sha256: str) -> dict[str, object] | None:
    """The marker of a finished conversion of ``source_sha256`` in ``folder``, or None."""
    try:
        marker = json.loads((folder / CONVERSION_MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(marker, dict) or marker.get("source_sha256") != source_sha256:
        return None
    return marker


def verify_conversion(folder: Path, marker: dict[str, object]) -> bool:
    """True when every weight file recorded in the marker still has its recorded SHA-256."""
    files = marker.get("files")
    if not isinstance(files, dict) or not files:
        return False
    for name, expected in files.items():
        path = folder / name
        if not path.is_file() or files_sha256([path]) != expected:
            return False
    return True
