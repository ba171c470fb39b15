"""``attnscope runs``: the runs store — list, show, export, import and delete stored runs."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from attnscope.cli import common
from attnscope.cli.keys import add_signing_options, signing_key_of
from attnscope.contracts import SCHEMA_VERSION
from attnscope.errors import InputError

SHOWN_CHARS = 48  # of a run's text in the list


def add(commands: argparse._SubParsersAction) -> None:
    runs = commands.add_parser(
        "runs",
        help="the runs store: list, show, export, import, delete stored runs",
        description="Stored runs (every answer of attnscope serve, and of analyze/attribute/generate --store) live "
        "in the data folder (ATTNSCOPE_HOME, else the platform's user data folder).",
    )
    actions = runs.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="stored runs, newest first")
    listing.add_argument("--text", help="runs whose text contains this (any case)")
    listing.add_argument("--model", help="runs whose model name or spec contains this")
    listing.add_argument("--method", help="runs of this attribution method")
    listing.add_argument("--kind", choices=("analysis", "attribution", "generation", "counterfactual", "bias"))
    listing.add_argument("--since", metavar="DATE", help="UTC date or time (ISO 8601), from")
    listing.add_argument("--until", metavar="DATE", help="UTC date or time (ISO 8601), before")
    listing.add_argument("--limit", type=int, default=50)
    listing.add_argument("--json", action="store_true", help="print one JSON object")
    listing.set_defaults(run=run_list)
    show = actions.add_parser("show", help="one run: its facts and its stored answer (masked; JSON)")
    show.add_argument("id")
    show.set_defaults(run=run_show)
    export = actions.add_parser("export", help="one run as one file (zip) that imports on another machine")
    export.add_argument("id")
    export.add_argument("--out", required=True, metavar="FILE.zip")
    add_signing_options(export, "also write FILE.intoto.json: the export signed, its provenance as predicate")
    export.set_defaults(run=run_export)
    imported = actions.add_parser("import", help="store a run exported on this or another machine (hashes checked)")
    imported.add_argument("file", metavar="FILE.zip")
    imported.set_defaults(run=run_import)
    delete = actions.add_parser("delete", help="delete a stored run")
    delete.add_argument("id")
    delete.set_defaults(run=run_delete)


def _store() -> Any:
    from attnscope.store.runs import RunsStore

    return RunsStore()


def run_list(args: argparse.Namespace) -> int:
    from attnscope.store.runs import check_when

    if not 1 <= args.limit <= 10_000:
        raise InputError("--limit must be between 1 and 10000")
    since, until = check_when(args.since, "--since"), check_when(args.until, "--until")
    with _store() as store:
        runs, total = store.list(
            text=args.text, model=args.model, method=args.method, kind=args.kind, since=since, until=until,
            limit=args.limit,
        )  # fmt: skip
    facts = [{k: v for k, v in run.to_dict().items() if k != "objects"} for run in runs]
    if args.json:
        common.emit({"schema_version": SCHEMA_VERSION, "result": "runs", "total": total, "runs": facts})
        return 0
    if not runs:
        print("no stored runs" + (" match" if total == 0 and any(_filters(args)) else ""))
        return 0
    print(f"{'id':16}  {'created (UTC)':19}  {'kind':11}  {'model':24}  text")
    for run in runs:
        text = run.text.replace("\n", "⏎")
        text = text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 1] + "…"
        model = run.model_name[:24]
        print(f"{run.id:16}  {run.created[:19].replace('T', ' '):19}  {run.kind:11}  {model:24}  {text}")
    if total > len(runs):
        print(f"… {total - len(runs)} more (--limit)")
    return 0


def _filters(args: argparse.Namespace) -> list[Any]:
    return [args.text, args.model, args.method, args.kind, args.since, args.until]


def run_show(args: argparse.Namespace) -> int:
    with _store() as store:
        run = store.get(args.id)
        answer = store.result(run)
    facts = {k: v for k, v in run.to_dict().items() if k != "objects"}
    print(
        json.dumps(
            {"schema_version": SCHEMA_VERSION, "result": "run", "run": facts, "answer": answer}, ensure_ascii=False
        )
    )
    return 0


def run_export(args: argparse.Namespace) -> int:
    from attnscope.store.transfer import export_run

    signing_key = signing_key_of(args)  # refused before anything is written
    with _store() as store:
        path = export_run(store, args.id, Path(args.out))
        predicate = store.result(store.get(args.id)).get("provenance") or {}
    if signing_key is None:
        print(f"exported run {args.id} to {path}")
        return 0
    from attnscope.governance.provenance import with_signing_key
    from attnscope.governance.signing import key_id, sign_files

    predicate = with_signing_key(predicate, key_id(signing_key.public_key()))
    envelope = sign_files([path], predicate, signing_key, path.with_suffix(".intoto.json"))
    print(f"exported run {args.id} to {path}, signed in {envelope} (attnscope verify {envelope})")
    return 0


def run_import(args: argparse.Namespace) -> int:
    from attnscope.store.transfer import import_run

    with _store() as store:
        run = import_run(store, Path(args.file))
    print(f"imported run {run.id} ({run.kind}, {run.model_name}, {run.created})")
    return 0


def run_delete(args: argparse.Namespace) -> int:
    with _store() as store:
        store.delete(args.id)
    print(f"deleted run {args.id}")
    return 0
