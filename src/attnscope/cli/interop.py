"""``attnscope interop``: export a trace or a stored run to bertviz, CircuitsVis or inseq, and import
inseq's saved attributions as stored runs (:mod:`attnscope.render.interop`, :mod:`attnscope.render.inseq_io`)."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

from attnscope.cli import common
from attnscope.errors import InputError

TARGETS = ("bertviz", "circuitsvis", "inseq")
RUN_ID = re.compile(r"^[0-9a-f]{16}$")


def add(commands: argparse._SubParsersAction) -> None:
    interop = commands.add_parser(
        "interop",
        help="export to bertviz, CircuitsVis or inseq; import inseq attributions",
        description="Export a trace file (attnscope analyze/generate --save) or a stored run to the inputs and files "
        "of bertviz, CircuitsVis and inseq, or import an attribution saved by inseq as stored runs.",
    )
    actions = interop.add_subparsers(dest="action", metavar="ACTION", required=True)
    export = actions.add_parser(
        "export",
        help="write bertviz/CircuitsVis HTML, bertviz tensors (.safetensors) or inseq JSON",
        description="bertviz: its head_view or model_view HTML (.html; it loads require.js, d3 and jQuery from "
        "cdnjs, so it needs a network to display) or its input tensors (.safetensors). circuitsvis: its "
        "attention_heads HTML of one layer (offline, bundle inline). inseq: FeatureAttributionOutput JSON "
        "(from an attribution run, a generation run with per-step attribution, or a trace with --method). "
        "Personal data in the token texts is masked by --pii-policy first.",
    )
    export.add_argument("source", metavar="TRACE_OR_RUN", help="a trace file (.safetensors) or a stored run's id")
    export.add_argument("--to", required=True, choices=TARGETS, help="the tool to export to")
    export.add_argument("--out", required=True, metavar="FILE", help=".html, .safetensors (bertviz) or .json (inseq)")
    export.add_argument("--view", choices=("head", "model"), default="head", help="bertviz view (default head)")
    export.add_argument("--layers", default=None, metavar="LIST", help="bertviz layers, e.g. 0,2,5 (default all)")
    export.add_argument("--layer", type=int, default=-1, help="circuitsvis: the layer (default -1, the last)")
    export.add_argument("--heads", default=None, metavar="LIST", help="heads, e.g. 0,3 (default all)")
    export.add_argument("--method", default=None, help="inseq from a trace: the attribution method (attnscope methods)")
    common.add_model_options(export, backend=False)
    common.add_pii_option(export)
    export.add_argument("--quiet", "-q", action="store_true", help="no progress lines on stderr")
    export.set_defaults(run=run_export)
    imported = actions.add_parser(
        "import",
        help="store an attribution saved by inseq (FeatureAttributionOutput.save) as runs; prints their ids",
        description="Each attributed step of each sequence becomes one attribution run (origin import) over the "
        "text before its token; the file is checked before anything is stored.",
    )
    imported.add_argument("file", metavar="FILE", help="inseq's JSON (gzip-compressed too)")
    imported.add_argument("--from", dest="origin", required=True, choices=("inseq",), help="the tool that wrote it")
    imported.add_argument("--sequence", type=int, default=None, help="only this sequence (default all)")
    imported.add_argument("--step", type=int, default=None, help="only this step of each sequence (default all)")
    common.add_pii_option(imported)
    imported.add_argument("--json", action="store_true", help="print the runs as one JSON object")
    imported.set_defaults(run=run_import)


def _indexes(value: str | None, what: str) -> list[int] | None:
    if value is None:
        return None
    try:
        return [int(part) for part in value.split(",") if part.strip()]
    except ValueError:
        raise InputError(f"--{what}: write indexes separated by commas, e.g. 0,2,5 (not {value!r})") from None


def _source(value: str) -> tuple[str, Any]:
    """("trace", Trace) for a trace file, ("run", (run, answer)) for a stored run's id."""
    path = Path(value)
    if path.is_file() and path.suffix.lower() == ".json":  # a saved --json answer, not a trace: say what to do
        raise InputError(
            f"{value} is a JSON file; interop export reads a trace file (attnscope analyze/generate --save "
            "trace.safetensors) or a stored run's id (--store, then attnscope runs list)"
        )
    if path.is_file():
        from attnscope.capture.trace import Trace

        return "trace", Trace.load(path)
    if RUN_ID.fullmatch(value):
        from attnscope.store.runs import RunsStore

        with RunsStore() as store:
            run = store.get(value)
            return "run", (run, store.result(run))
    raise InputError(f"{value!r} is neither a trace file nor a stored run's id (16 hexadecimal digits)")


def run_export(args: argparse.Namespace) -> int:
    from attnscope.governance.masking import check_policy

    check_policy(args.pii_policy)
    out = Path(args.out)
    if out.is_dir() or not out.parent.is_dir():
        raise InputError(f"--out: {out} is a folder" if out.is_dir() else f"--out: folder {out.parent} does not exist")
    layers, heads = _indexes(args.layers, "layers"), _indexes(args.heads, "heads")
    kind, loaded = _source(args.source)
    if args.to == "inseq":
        written = _inseq(args, kind, loaded, out)
    elif kind == "run":
        raise InputError(
            f"a stored run keeps the rows it showed, not the attention matrices {args.to} draws: export a trace "
            "file (attnscope analyze TEXT --save trace.safetensors) instead"
        )
    elif args.to == "bertviz":
        from attnscope.render import interop

        if out.suffix == ".safetensors":
            written = interop.save_tensors(loaded, out, layers=layers, heads=heads, pii_policy=args.pii_policy)
        else:
            html = interop.bertviz_html(loaded, view=args.view, layers=layers, heads=heads, pii_policy=args.pii_policy)
            written = interop.write_text(out, html)
    else:
        from attnscope.render import interop

        written = interop.write_text(
            out, interop.circuitsvis_html(loaded, args.layer, heads=heads, pii_policy=args.pii_policy)
        )
    common.say(args)(f"wrote {written} ({written.stat().st_size:,} bytes)")
    print(written)
    return 0


def _inseq(args: argparse.Namespace, kind: str, loaded: Any, out: Path) -> Path:
    from attnscope.render.inseq_export import from_answer, masked_answer, trace_answer

    if kind == "run":
        if args.method is not None:
            raise InputError("--method computes an attribution from a trace; a stored run has its own")
        run, answer = loaded
        if run.kind not in ("attribution", "generation"):
            raise InputError(f"run {run.id} is a {run.kind} run; inseq takes an attribution or a generation run")
        return _save_inseq(from_answer(answer, text=run.text), out)  # stored runs are masked already
    if args.method is None:
        raise InputError("exporting a trace to inseq needs --method (e.g. attention, grad-x-input)")
    from attnscope.methods import catalogue

    spec = catalogue.get(args.method)
    model = None
    if "model" in spec.needs or args.model is not None:
        args.model = args.model or loaded.model.spec
        model = common.load(args)
    answer = trace_answer(loaded, args.method, model)
    kind = str(answer["result"])
    text = answer["prompt"]["text"] if kind == "generation" else loaded.text
    masked = masked_answer(kind, text, answer, args.pii_policy)  # the file leaves the process
    if kind == "generation":
        return _save_inseq(from_answer(masked), out)
    same = all(a["text"] == b["text"] for a, b in zip(answer["units"], masked["units"], strict=True))
    ids = [t.id if a["text"] == b["text"] else -1 for t, a, b in zip(loaded.tokens, answer["units"], masked["units"],
                                                                       strict=True)]  # fmt: skip
    return _save_inseq(from_answer(masked, text=loaded.text if same else None, ids=ids), out)


def _save_inseq(output: Any, out: Path) -> Path:
    """inseq's own ``save`` into a temporary file renamed into place."""
    import os
    import tempfile

    descriptor, temp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".json", dir=out.parent)
    os.close(descriptor)
    try:
        output.save(temp, overwrite=True)
        os.replace(temp, out)
    except OSError as error:
        Path(temp).unlink(missing_ok=True)
        raise InputError(f"cannot write {out}: {error.strerror or error}") from None
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return out


def run_import(args: argparse.Namespace) -> int:
    from attnscope.render.inseq_io import import_inseq
    from attnscope.store.runs import RunsStore

    with RunsStore() as store:
        runs = import_inseq(store, Path(args.file), sequence=args.sequence, step=args.step, pii_policy=args.pii_policy)
    if args.json:
        print(json.dumps({"runs": [{"id": r.id, "summary": r.summary, "method": r.method} for r in runs]},
                         ensure_ascii=False))  # fmt: skip
    else:
        for run in runs:
            print(run.id)
    return 0
