"""Bias probe suites on disk: the ones shipped in the package and the user's own files.

The packaged suites are the JSON files of ``attnscope/analysis/bias_suites/`` (their format:
:mod:`attnscope.analysis.bias_suite`); a user's suite is any file of that format, named by its path.
"""

from __future__ import annotations

import json
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from attnscope.analysis.bias_suite import Suite, parse_suite
from attnscope.errors import InputError

MAX_SUITE_BYTES = 10 * 1024 * 1024


def _folder() -> Traversable:
    return resources.files("attnscope.analysis").joinpath("bias_suites")


def suite_names() -> list[str]:
    """The packaged suites' names, sorted."""
    return sorted(entry.name.removesuffix(".json") for entry in _folder().iterdir() if entry.name.endswith(".json"))


def list_suites() -> list[dict[str, Any]]:
    """Each packaged suite's description (:meth:`Suite.to_dict`: name, language, source, licence, ...)."""
    return [load_suite(name).to_dict() for name in suite_names()]


def load_suite(spec: str | Path | dict[str, Any] | Suite) -> Suite:
    """A suite: a packaged suite's name, the path of a suite file, decoded suite JSON or a
    :class:`Suite`; anything unusable is a one-line :class:`InputError`."""
    if isinstance(spec, Suite):
        return spec
    if isinstance(spec, dict):
        return parse_suite(spec)
    if not isinstance(spec, str | Path) or not str(spec).strip():
        raise InputError("name a bias suite (attnscope bias --list) or give the path of a suite file")
    name = str(spec).strip()
    if isinstance(spec, str) and name in suite_names():
        text = _folder().joinpath(f"{name}.json").read_text(encoding="utf-8")
        return parse_suite(json.loads(text), f"packaged suite {name!r}")
    path = Path(name).expanduser()
    if not path.exists():
        raise InputError(
            f"unknown bias suite {name!r}; packaged suites: {', '.join(suite_names())} (or give a suite file's path)"
        )
    if not path.is_file():
        raise InputError(f"bias suite {name!r} is not a file")
    if path.stat().st_size > MAX_SUITE_BYTES:
        raise InputError(f"bias suite file {name!r} is over {MAX_SUITE_BYTES // (1024 * 1024)} MiB")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise InputError(f"bias suite file {name!r} is not UTF-8 text") from None
    except json.JSONDecodeError as error:
        raise InputError(
            f"bias suite file {name!r} is not JSON (line {error.lineno}, column {error.colno}: {error.msg})"
        ) from None
    except OSError as error:
        raise InputError(f"cannot read bias suite file {name!r}: {error.strerror or error}") from None
    return parse_suite(data, f"suite file {path.name}")
