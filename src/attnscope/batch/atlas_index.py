"""The index of a corpus head atlas (atlas.json) checked before anything else is read: the errors a
reader raises, the folder's served name, and the checks that refuse a foreign, corrupt or newer index
with one line (shard files are named by their ids only: an index can never point a reader elsewhere).
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

from attnscope.batch import layout
from attnscope.errors import AttnscopeError, InputError

_SHA = re.compile(r"^[0-9a-f]{64}$")
_METRIC = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_METHOD = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")  # catalogue names: grad-x-input, integrated-gradients
_NAME = re.compile(r"[^A-Za-z0-9._-]+")
MAX_LAYERS = 1_000  # far beyond any model's (126 layers x 128 heads is among the largest); an index claiming
MAX_HEADS = 1_000  # more is corrupt, and would make a reader allocate its (layers, heads) arrays without end


class AtlasFormatError(AttnscopeError):
    """An atlas folder is missing, corrupt, foreign, of an unknown schema version or changed under us."""

    code = "bad_atlas"
    status = 409


class AtlasQueryError(InputError):
    """A request names a metric or an option the atlas does not have."""

    code = "invalid_request"
    status = 422


class AtlasChanged(Exception):
    """A shard no longer matches the index it was opened with, and the index itself changed: re-read it."""


def atlas_name(folder: Path) -> str:
    """The name an atlas folder is served under: its folder name, characters outside [A-Za-z0-9._-] as '-'."""
    name = _NAME.sub("-", folder.name).strip(".-") or "atlas"
    return name[:100]


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def stamp(path: Path) -> tuple[int, int]:
    info = path.stat()
    return info.st_mtime_ns, info.st_size


def check_index(index: Any, path: Path) -> None:
    """Refuse an index that is foreign, of another schema version or malformed, naming the first fault."""

    def bad(why: str) -> AtlasFormatError:
        return AtlasFormatError(f"{path}: {why}")

    if not isinstance(index, dict) or index.get("format") != layout.FORMAT:
        raise bad(f"not an attnscope atlas index (its format is not {layout.FORMAT!r})")
    version = index.get("schema_version")
    if version != layout.SCHEMA_VERSION:
        raise bad(f"schema version {version!r}; this attnscope reads version {layout.SCHEMA_VERSION}")
    model = index.get("model")
    if not isinstance(model, dict) or not all(
        isinstance(model.get(k), int) and not isinstance(model.get(k), bool) and model[k] > 0
        for k in ("num_layers", "num_heads")
    ):
        raise bad("model.num_layers and model.num_heads must be positive integers")
    if model["num_layers"] > MAX_LAYERS or model["num_heads"] > MAX_HEADS:  # a reader allocates layers x heads
        raise bad(f"model.num_layers and model.num_heads must be at most {MAX_LAYERS:,} and {MAX_HEADS:,}")
    metrics = index.get("metrics")
    if (
        not isinstance(metrics, list)
        or not metrics
        or not all(isinstance(m, str) and _METRIC.match(m) for m in metrics)
    ):
        raise bad("metrics must be a non-empty list of metric names")
    methods = index.get("methods") or []
    if not isinstance(methods, list) or not all(isinstance(m, str) and _METHOD.match(m) for m in methods):
        raise bad("methods must be a list of method names")
    if not isinstance(index.get("complete"), bool):
        raise bad("complete must be true or false")
    shards = index.get("shards")
    if not isinstance(shards, list):
        raise bad("shards must be a list")
    last = -1
    for shard in shards:
        if not isinstance(shard, dict) or not isinstance(shard.get("id"), str) or not layout.is_shard_id(shard["id"]):
            raise bad("a shard has no well-formed id")
        name = shard["id"]
        if shard.get("files") != layout.shard_files(name):  # the files are named by the id, never by a free path
            raise bad(f"{name}: its files must be {layout.shard_files(name)}")
        first, final, rows, sums = shard.get("first"), shard.get("last"), shard.get("rows"), shard.get("sha256")
        if not (isinstance(first, int) and isinstance(final, int) and last < first <= final):
            raise bad(f"{name}: first and last must be increasing prompt indices after the previous shard's")
        if not (
            isinstance(rows, dict) and all(isinstance(rows.get(k), int) and rows[k] >= 0 for k in ("prompts", "heads"))
        ):
            raise bad(f"{name}: rows must give the prompts and heads row counts")
        if not (
            isinstance(sums, dict)
            and all(isinstance(sums.get(k), str) and _SHA.match(sums[k]) for k in ("prompts", "heads"))
        ):
            raise bad(f"{name}: sha256 must give the prompts and heads files' SHA-256")
        last = final
    if index["complete"]:
        bins = index.get("bins")
        if not isinstance(bins, dict) or not all(
            isinstance(bins.get(m), list) and len(bins[m]) >= 2 and all(isinstance(e, int | float) for e in bins[m])
            for m in metrics
        ):
            raise bad("a complete atlas must give histogram bin edges for every metric (bins)")
