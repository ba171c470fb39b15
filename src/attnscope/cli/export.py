"""``attnscope export``: one view of a trace file or a stored run as a publication figure (PNG, SVG,
PDF), its numbers (CSV, JSON), or the whole trace as one offline HTML file."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from attnscope.cli import common
from attnscope.errors import InputError
from attnscope.home import write_atomic

FORMATS = ("png", "svg", "pdf", "csv", "json", "html")
SUFFIXES = {"html": (".html", ".htm")}


def add(commands: argparse._SubParsersAction) -> None:
    command = commands.add_parser(
        "export",
        help="a view of a trace file or a stored run as PNG, SVG, PDF, CSV, JSON or offline HTML",
        description="Write one view of TRACE_OR_RUN (a trace file saved by Trace.save, or a run id from "
        "'attnscope runs list') as a figure made with matplotlib (PNG at least 1600 px wide, SVG with text as text, "
        "PDF; title, labelled axes, colour bar and a provenance footer), as its numbers (CSV with '#' provenance "
        "lines, JSON), or the whole trace as one HTML file that opens offline. A run's answer views are drawn from "
        "its stored answer; the attention views re-capture its text on its own model, only when that model is "
        "installed with the same fingerprint. Personal data is masked by --pii-policy (as for a stored run).",
    )
    command.add_argument(
        "source", metavar="TRACE_OR_RUN", help="a trace file, a stored run's id, or a saved JSON answer (.json)"
    )
    command.add_argument("--view", default=None, help="the view (default: heatmap for a trace, the run's own view)")
    command.add_argument("--format", choices=FORMATS, default="png", help="png (default), svg, pdf, csv, json or html")
    command.add_argument("--layer", type=int, default=-1, help="layer (negative from the end; default -1)")
    command.add_argument("--head", default="mean", help="a head index, mean (default) or max")
    command.add_argument("--query", type=int, default=-1, help="query token (negative from the end; default -1)")
    command.add_argument("--stack", default=None, help="decoder, encoder or cross (default: the model's)")
    command.add_argument("--method", default=None, help="token view: colour by this method's scores, not attention")
    command.add_argument("--granularity", default="token", help="token view with --method: token, word, sentence …")
    command.add_argument("--metric", default=None, help="metrics view: one metric (default every metric)")
    command.add_argument(
        "--option", action="append", default=[], metavar="NAME=VALUE",
        help="a view's or method's option (graph: threshold, max_edges; sankey: top, residual; a method's own)",
    )  # fmt: skip
    command.add_argument("--title", default=None, help="the figure's title instead of the view's")
    command.add_argument("--language", choices=("en", "zh-CN"), default="en", help="HTML: the page's language")
    command.add_argument("--out", default=None, metavar="FILE", help="default: attnscope-VIEW-SOURCE.FORMAT here")
    common.add_pii_option(command)
    common.add_device_options(command)
    command.add_argument("--quiet", "-q", action="store_true", help="no progress lines on stderr")
    command.add_argument("--json", action="store_true", help="print what was written as one JSON object")
    command.set_defaults(run=run)


def _head(value: str) -> int | str:
    if value in ("mean", "max"):
        return value
    try:
        return int(value)
    except ValueError:
        raise InputError(f"--head must be a head index, mean or max, not {value!r}") from None


def _options(values: list[str]) -> dict[str, Any]:
    """``NAME=VALUE`` pairs, values read as JSON when they parse (numbers, true/false), else as text."""
    options: dict[str, Any] = {}
    for pair in values:
        name, equals, value = pair.partition("=")
        if not equals or not name.strip():
            raise InputError(f"--option takes NAME=VALUE, not {pair!r}")
        try:
            options[name.strip()] = json.loads(value)
        except json.JSONDecodeError:
            options[name.strip()] = value
    return options


def _out_path(args: argparse.Namespace, view: str, source: str) -> Path:
    """--out checked (its folder exists, it is not a folder, its suffix is the format's) before any work."""
    out = Path(args.out) if args.out else Path(f"attnscope-{view}-{source}.{args.format}")
    if out.suffix.lower() not in SUFFIXES.get(args.format, (f".{args.format}",)):
        raise InputError(f"--out must end in .{args.format} for --format {args.format}, not {out.name!r}")
    if not out.parent.is_dir():
        raise InputError(f"--out: folder {out.parent} does not exist")
    if out.is_dir():
        raise InputError(f"--out: {out} is a folder")
    return out


def _trace_model(trace: Any, device: str) -> Any:
    """The trace's own model when it is installed with the same fingerprint (methods that run it)."""
    from attnscope.errors import AttnscopeError
    from attnscope.models import load_model

    try:
        model = load_model(trace.model.spec, device=device)
    except AttnscopeError as error:
        raise InputError(
            f"this method runs the model again, and {trace.model.spec} is not available here ({error})"
        ) from None
    if model.fingerprint != trace.model.fingerprint:
        raise InputError(
            f"the trace was captured with another {trace.model.spec} (fingerprint {trace.model.fingerprint[:12]}), "
            f"not the one installed ({model.fingerprint[:12]})"
        )
    return model


def run(args: argparse.Namespace) -> int:
    from attnscope.render.exports.frame import ExportOptions
    from attnscope.render.exports.registry import check_format, view, views_for_answer
    from attnscope.render.exports.sources import open_source, recapture

    common.quiet_libraries()
    check_format(args.format)
    head = _head(args.head)
    if args.view is not None:
        view(args.view)  # an unknown view is refused before anything is read
    source = open_source(args.source)
    if source.answer is not None and args.view is None:
        own = views_for_answer(source.answer)
        name = own[0] if own else "heatmap"  # an analysis: its attention, captured again
    else:
        name = args.view or "heatmap"
    chosen = view(name)
    check_format(args.format, chosen)
    out = _out_path(args, name, source.name)
    options = ExportOptions(
        layer=args.layer, head=head, query=args.query, method=args.method, method_options=_options(args.option),
        stack=args.stack, granularity=args.granularity, language=args.language, title=args.title,
        metric=args.metric, pii_policy=args.pii_policy,
    )  # fmt: skip
    from attnscope.render.exports.build import export

    trace, answer, model = source.trace, source.answer, None
    device = common.check_device(args.device)
    if answer is not None and (args.format == "html" or not chosen.reads_answer(answer)):
        if source.run is None:  # a JSON answer file: drawn as it is, nothing to capture again
            drawers = ", ".join(views_for_answer(answer)) or "none"
            raise InputError(
                f"{args.source} is a saved answer: the {name} view does not draw it as {args.format} "
                f"(views that draw it: {drawers})"
            )
        common.say(args)(f"capturing run {source.name}'s text again on {source.run.model_spec} …")
        model, trace = recapture(source.run, answer, device=device)
        answer = None
    if trace is not None and name == "tokens" and args.method not in (None, "attention", "rollout", "flow"):
        model = model or _trace_model(trace, device)
    exported = export(
        name, args.format, options, trace=trace, answer=answer, model=model, masked=source.run is not None
    )
    write_atomic(out, exported.data)
    if args.json:
        common.emit({"wrote": str(out), "view": name, "format": args.format, "bytes": len(exported.data)})
    else:
        print(f"wrote {out} ({len(exported.data):,} bytes)")
    return 0
