"""What a catalog model occupies on disk: its installed copies and its converted cache.

A model can have a copy in the data folder and an old-style copy in the Python environment (pip
packages in site-packages); both count, and ``attnscope models remove`` deletes both. The converted
cache is every ``converted/<sha256[:16]>-<dtype>`` folder made from the model's GGUF file.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

from attnscope.models import cache
from attnscope.models.disk import disk_bytes
from attnscope.models.home import only_home

if TYPE_CHECKING:
    from attnscope.models.catalog import CatalogEntry, Location


@dataclass(frozen=True)
class Copy:
    """One installed copy: the data-folder ``paths[0]``, or every file of the environment's ``packages``."""

    location: Location
    paths: tuple[Path, ...]
    bytes: int
    packages: tuple[str, ...] = ()

    def describe(self) -> str:
        if self.location == "home":
            return f"the data folder copy {self.paths[0]}"
        return f"the Python environment's packages {', '.join(self.packages)}"


@dataclass(frozen=True)
class DiskUse:
    installed_bytes: int
    cache_bytes: int

    @property
    def total_bytes(self) -> int:
        return self.installed_bytes + self.cache_bytes


def environment_copy(entry: CatalogEntry) -> Copy | None:
    """The old-style copy: every file of the model's distributions installed in the Python environment."""
    names: list[str] = []
    files: list[Path] = []
    for name in entry.package_names:
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        names.append(name)
        files.extend(Path(str(dist.locate_file(f))) for f in dist.files or ())
    if not names:
        return None
    seen: set[tuple[int, int]] = set()
    total = sum(disk_bytes(path, seen) for path in files)
    return Copy("environment", tuple(files), total, tuple(names))


def installed_copies(entry: CatalogEntry) -> list[Copy]:
    """The copies on disk, data folder first; the environment's only without ``ATTNSCOPE_MODELS_ONLY_HOME``."""
    copies: list[Copy] = []
    folder = entry.home_folder()
    if folder.is_dir():
        copies.append(Copy("home", (folder,), disk_bytes(folder)))
    if not only_home():
        found = environment_copy(entry)
        if found is not None:
            copies.append(found)
    return copies


def conversions(entry: CatalogEntry) -> list[Path]:
    """The converted-cache folders made from this model (GGUF models only)."""
    return [] if entry.weight_format == "folder" else cache.conversion_dirs(entry.sha256)


def disk_use(entry: CatalogEntry) -> DiskUse:
    """Bytes on disk (like ``du``): installed copies, and the converted cache."""
    seen: set[tuple[int, int]] = set()
    installed = sum(copy.bytes for copy in installed_copies(entry))
    converted = sum(disk_bytes(folder, seen) for folder in conversions(entry))
    return DiskUse(installed, converted)
