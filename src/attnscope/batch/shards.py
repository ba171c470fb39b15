"""Durable atlas files: shards written to a temporary name, fsynced and renamed; the index
(``atlas.json``) rewritten the same way after every shard, so a run killed at any point leaves the
index naming only whole shards, and a rerun redoes just what the index does not name.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from attnscope.batch import layout
from attnscope.errors import InputError

# fields of atlas.json that say what the atlas is: a rerun must match them, or it is another atlas
IDENTITY = ("corpus", "model", "methods", "top_k", "shard_size", "options")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _sync_folder(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not every file system lets a folder be opened for fsync
        handle = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(handle)
        finally:
            os.close(handle)


def replace_durably(write: Any, target: Path) -> None:
    """``write(path)`` into a temporary file beside ``target``, fsync it, rename it over ``target``."""
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(handle)
    try:
        write(temp)
        with open(temp, "rb+") as synced:
            os.fsync(synced.fileno())
        os.replace(temp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
    _sync_folder(target.parent)


def write_parquet(table: Any, target: Path) -> str:
    """Write ``table`` durably to ``target``; its SHA-256."""
    import pyarrow.parquet as pq

    replace_durably(lambda path: pq.write_table(table, path, compression="zstd"), target)
    return file_sha256(target)


def write_index(folder: Path, index: dict[str, Any]) -> None:
    """Rewrite ``atlas.json`` atomically."""
    data = json.dumps(index, ensure_ascii=False, indent=1, allow_nan=False).encode("utf-8")
    replace_durably(lambda path: Path(path).write_bytes(data), folder / layout.INDEX)


def read_index(folder: Path) -> dict[str, Any] | None:
    """The index of the atlas in ``folder``, or None where there is none yet."""
    path = folder / layout.INDEX
    if not path.exists():
        return None
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputError(f"{path} is not a readable atlas index ({error})") from None
    if not isinstance(index, dict) or index.get("format") != layout.FORMAT:
        raise InputError(f"{path} is not an attnscope atlas index")
    if index.get("schema_version") != layout.SCHEMA_VERSION:
        raise InputError(
            f"{path} is atlas schema version {index.get('schema_version')}; this attnscope reads version "
            f"{layout.SCHEMA_VERSION}: write the atlas to a new folder"
        )
    return index


def open_atlas(folder: Path, header: dict[str, Any], *, overwrite: bool = False) -> dict[str, Any]:
    """The index to continue in ``folder``: the existing one when it is the same atlas (its whole
    shards kept, files a killed run left behind removed), else a new one from ``header``.

    A folder holding another atlas is refused unless ``overwrite``; a non-empty folder that holds no
    atlas is always refused (nothing of the user's is deleted)."""
    existing = read_index(folder) if folder.is_dir() else None
    if folder.exists() and not folder.is_dir():
        raise InputError(f"--out {folder} is a file, not a folder")
    if existing is None and folder.is_dir() and any(folder.iterdir()):
        raise InputError(f"--out {folder} is not empty and holds no atlas; choose a new or empty folder")
    if existing is not None:
        changed = next((name for name in IDENTITY if existing.get(name) != header.get(name)), None)
        if changed is not None and not overwrite:
            raise InputError(
                f"--out {folder} holds another atlas (its {changed} differs); use a new folder or --overwrite"
            )
        if changed is not None:
            _remove_atlas(folder)
            existing = None
    if existing is None:
        folder.mkdir(parents=True, exist_ok=True)
        index = {**header, "shards": [], "complete": False}
        write_index(folder, index)
        return index
    kept = [shard for shard in existing.get("shards", []) if _whole(folder, shard)]
    index = {**existing, **{k: v for k, v in header.items() if k not in ("created",)}}
    index["shards"] = kept
    index["complete"] = bool(existing.get("complete")) and len(kept) == len(existing.get("shards", []))
    if not index["complete"]:  # the index first, then the files it no longer names
        index.pop("summary", None)
        index.pop("bins", None)
        write_index(folder, index)
    _remove_strays(folder, {shard["id"] for shard in kept}, summary=not index["complete"])
    return index


def _whole(folder: Path, shard: dict[str, Any]) -> bool:
    """Whether a shard the index names is on disk as written (a file changed since is redone)."""
    try:
        return all(file_sha256(folder / shard["files"][part]) == shard["sha256"][part] for part in ("prompts", "heads"))
    except (OSError, KeyError, TypeError):
        return False


def _remove_strays(folder: Path, kept: set[str], *, summary: bool) -> None:
    """Shard files the index does not name (a killed run's last shard), temporary files, and with
    ``summary`` the summary of an atlas that is no longer complete."""
    for part in (layout.PROMPTS_DIR, layout.HEADS_DIR):
        for path in (folder / part).glob("*") if (folder / part).is_dir() else ():
            name = path.name
            stray_temp = name.startswith(".") and name.endswith(".tmp")
            stray_shard = name.endswith(".parquet") and name.removesuffix(".parquet") not in kept
            if stray_temp or stray_shard:
                path.unlink(missing_ok=True)
    for path in folder.glob(f".{layout.SUMMARY}.*.tmp"):
        path.unlink(missing_ok=True)
    if summary:
        (folder / layout.SUMMARY).unlink(missing_ok=True)


def _remove_atlas(folder: Path) -> None:
    """Remove an atlas's own files (its index, shard folders and summary), nothing else."""
    for part in (layout.PROMPTS_DIR, layout.HEADS_DIR):
        shutil.rmtree(folder / part, ignore_errors=True)
    (folder / layout.SUMMARY).unlink(missing_ok=True)
    (folder / layout.INDEX).unlink(missing_ok=True)


def record_shard(folder: Path, index: dict[str, Any], entry: dict[str, Any], updated: str) -> None:
    """Add a written shard to the index (in corpus order) and rewrite the index."""
    shards = [shard for shard in index["shards"] if shard["id"] != entry["id"]] + [entry]
    index["shards"] = sorted(shards, key=lambda shard: shard["first"])
    index["updated"] = updated
    write_index(folder, index)


def shard_plan(n_prompts: int, shard_size: int) -> list[tuple[int, int, int]]:
    """``[(shard number, first, last)]`` covering prompts 0 .. n-1 in corpus order."""
    return [
        (number, first, min(first + shard_size, n_prompts) - 1)
        for number, first in enumerate(range(0, n_prompts, shard_size))
    ]
