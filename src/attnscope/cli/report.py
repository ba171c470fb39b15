"""``attnscope report``: every method, their agreement and the head metrics in one self-contained HTML page."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from attnscope.cli import common
from attnscope.cli.analyze import add_dp_options, check_dp
from attnscope.cli.keys import add_signing_options, signing_key_of
from attnscope.cli.methods import method_options
from attnscope.errors import InputError
from attnscope.methods import catalogue
from attnscope.methods.spec import OBJECTIVES


def add(commands: argparse._SubParsersAction) -> None:
    report = commands.add_parser(
        "report",
        help="a self-contained HTML report (and JSON) with every method, agreement and head metrics",
        description="Run every attribution method on TEXT, compare their rankings, measure every head, and write "
        "PATH.html with the same data as PATH.json beside it. With --sign, also PATH.intoto.json: a DSSE envelope "
        "(in-toto Statement v1, Ed25519) over both files with the report's provenance record as its predicate; "
        "'attnscope verify PATH.intoto.json' checks it.",
    )
    common.add_text(report)
    report.add_argument("--out", required=True, metavar="PATH.html")
    report.add_argument("--granularity", choices=catalogue.GRANULARITIES, default="word")
    report.add_argument("--methods", nargs="+", default=None, choices=catalogue.attribution_names())
    report.add_argument("--target", default=None)
    report.add_argument(
        "--objective",
        choices=OBJECTIVES,
        default=None,
        help="what gradient and occlusion methods explain (default: next-token, or continuation with --target; "
        "loss: the text's own mean log-likelihood, gradient methods only, occlusion is skipped)",
    )
    report.add_argument("--steps", default=None, help="integrated-gradients steps (default auto)")
    report.add_argument(
        "--language", choices=("en", "zh-CN"), default="en", help="the words of PATH.html: English or 简体中文"
    )
    add_signing_options(report, "also write PATH.intoto.json, signed (attnscope verify)")
    common.add_pii_option(report)
    add_dp_options(report)
    common.add_model_options(report)
    common.add_output_options(report)
    report.set_defaults(run=run)


def write_atomic(path: Path, content: str) -> None:
    partial = path.with_name(f".{path.name}.partial")
    try:
        partial.write_text(content, encoding="utf-8")
        partial.replace(path)
    except OSError as error:
        partial.unlink(missing_ok=True)
        raise InputError(f"cannot write {path}: {error.strerror or error}") from None


def _masked(args: argparse.Namespace, text: str, data: dict[str, Any]) -> dict[str, Any]:
    """The report with personal data masked by --pii-policy (files leave the process); drop: none written."""
    from attnscope.governance.masking import mask_answer
    from attnscope.governance.privacy import PiiFoundError

    try:
        _, masked, count = mask_answer("report", text, data, args.pii_policy)
    except PiiFoundError as error:
        raise InputError(f"no report written (--pii-policy drop): {error}") from None
    if count:
        common.say(args)(f"masked {count} personal-data value(s) in the report (--pii-policy {args.pii_policy})")
    return masked


def _private(args: argparse.Namespace, data: dict[str, Any]) -> dict[str, Any]:
    """The report with every method's scores released with differential privacy (--dp-epsilon), its
    observations worded again from what is released."""
    if args.dp_epsilon is None:
        return data
    from attnscope.governance.dp_methods import privatize_methods
    from attnscope.governance.provenance import seal
    from attnscope.render.observations import observations

    private = privatize_methods("report", data, args.dp_epsilon, mechanism=args.dp_mechanism, delta=args.dp_delta)
    private["observations"] = observations(private)
    return seal(private)


def run(args: argparse.Namespace) -> int:
    text = common.read_text(args.text, args.text_file)
    out = Path(args.out)
    if out.suffix.lower() not in (".html", ".htm"):
        raise InputError("--out must name an .html file (the JSON is written beside it)")
    if not out.parent.is_dir():
        raise InputError(f"--out: folder {out.parent} does not exist")
    if out.is_dir():
        raise InputError(f"--out: {out} is a folder")
    options = catalogue.shared_options(args.methods, method_options(args, None))  # refused before loading
    check_dp(args)
    signing_key = signing_key_of(args)  # a missing key or a wrong passphrase is refused before the slow part
    if args.pii_policy == "drop":  # refused before the slow part too
        _masked(args, text, {"text": text})
    model = common.load(args)
    from attnscope.methods.report import explain
    from attnscope.render.html import report_html
    from attnscope.render.json import report_json

    common.say(args)("running every method …")
    report = common.run_job(
        args,
        lambda bar: explain(
            model,
            text,
            methods=args.methods,
            granularity=args.granularity,
            target=args.target,
            objective=args.objective,
            backend=args.backend,
            progress=bar,
            **options,
        ),
    )
    data = _masked(args, text, _private(args, report_json(report)))
    if signing_key is not None:  # the record names the key that signs it
        from attnscope.governance.provenance import with_signing_key
        from attnscope.governance.signing import key_id

        data["provenance"] = with_signing_key(data["provenance"], key_id(signing_key.public_key()))
    json_path = out.with_suffix(".json")
    write_atomic(out, report_html(data, args.language))
    write_atomic(json_path, json.dumps(data, ensure_ascii=False, indent=1))
    envelope = None
    if signing_key is not None:
        from attnscope.governance.signing import key_id, sign_files

        envelope = sign_files([out, json_path], data["provenance"], signing_key, out.with_suffix(".intoto.json"))
        common.say(args)(f"signed by key {key_id(signing_key.public_key())}")
    if args.json:  # the report contract on standard output too
        common.emit(data)
    elif envelope is not None:
        print(f"wrote {out}, {json_path} and {envelope}")
    else:
        print(f"wrote {out} and {json_path}")
    return 0
