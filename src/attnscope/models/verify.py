"""Whether a catalog model is installed, damaged or not installed — checked, never assumed.

Sizes are checked first (cheap: a half-written part is caught without reading it), then the SHA-256
through the stat-keyed hash index (:func:`attnscope.models.cache.files_sha256`), so a verified
multi-hundred-MB file is read once, not at every listing or load.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from attnscope.models import cache
from attnscope.models.disk import human_bytes

if TYPE_CHECKING:
    from attnscope.models.catalog import CatalogEntry, Location

State = Literal["installed", "damaged", "not installed"]


@dataclass(frozen=True)
class Installation:
    """What :func:`inspect` found for one catalog model.

    ``state``: ``installed`` (every file present with the catalog's size and SHA-256), ``damaged``
    (files present but missing, short, long or different: ``problem`` says which) or
    ``not installed``. ``location``/``root`` say where (see ``catalog.Located``); ``paths`` are the
    located files in catalog order, complete only when the state is ``installed``.
    """

    alias: str
    state: State
    location: Location | None
    root: Path | None
    paths: tuple[Path, ...]
    problem: str | None = None

    @property
    def installed(self) -> bool:
        return self.state == "installed"


def _size_problem(label: str, size: int, expected: int) -> str:
    shown, wanted = human_bytes(size), human_bytes(expected)
    if shown == wanted:
        shown, wanted = f"{size:,} bytes", f"{expected:,}"
    return f"{label} is {shown} of {wanted}" if size < expected else f"{label} is {shown}, not {wanted}"


def check_files(entry: CatalogEntry, paths: list[Path], *, use_cache: bool = True) -> str | None:
    """The first problem of the located ``paths`` against the catalog (None: sizes and SHA-256 match).

    ``use_cache=False`` hashes without consulting or filling the hash index (files about to move).
    """
    weights = entry.weight_files(paths)
    for spec, path in zip(entry.files, weights, strict=True):
        label = path.name if entry.weight_format == "folder" else spec.label
        try:
            size = path.stat().st_size
        except OSError:
            return f"{label} is missing"
        if spec.size is not None and size != spec.size:
            return _size_problem(label, size, spec.size)
    try:
        actual = cache.files_sha256(weights, use_cache=use_cache)
    except OSError as error:
        return f"cannot read the weights: {error.strerror or error}"
    if actual != entry.sha256:
        return f"SHA-256 mismatch (expected {entry.sha256[:12]}…, got {actual[:12]}…)"
    return None


def inspect(entry: CatalogEntry) -> Installation:
    """Locate ``entry``'s files (data folder first, then the Python environment) and verify them."""
    located = entry.locate()
    if located.location is None:
        return Installation(entry.alias, "not installed", None, None, ())
    missing = [spec.label for spec, path in zip(entry.files, located.paths, strict=True) if path is None]
    found = tuple(p for p in located.paths if p is not None)
    if missing:
        verb = "is" if len(missing) == 1 else "are"
        why = f"{', '.join(missing)} {verb} missing"
        return Installation(entry.alias, "damaged", located.location, located.root, found, why)
    problem = check_files(entry, list(found))
    state: State = "damaged" if problem else "installed"
    return Installation(entry.alias, state, located.location, located.root, found, problem)
