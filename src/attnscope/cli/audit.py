"""``attnscope audit``: rules, evidence, counterfactuals, attribution and bias in one signed report."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from attnscope.cli import common
from attnscope.cli.keys import add_signing_options, signing_key_of
from attnscope.errors import InputError

FAILED = 1  # exit status when a critical rule failed (as attnscope rules check)


def add(commands: argparse._SubParsersAction) -> None:
    audit = commands.add_parser(
        "audit",
        help="an audit report: rules with evidence and suggested fixes, counterfactuals, attribution, bias",
        description="Check TEXT against a rule file and write PATH.html (and PATH.json, PATH.pdf with --pdf, "
        "PATH.intoto.json with --sign): the provenance summary, the input (personal data masked), every rule's "
        "result with the evidence and suggested fixes for each violation, a counterfactual per failed 'should "
        "attend' rule, the attention snapshot, the attribution and, with --bias, bias probes. Exit status: 0, "
        "or 1 when a critical rule failed (the report is written either way), 2 an error.",
    )
    common.add_text(audit)
    audit.add_argument("--rules", required=True, metavar="FILE", help="a rule file (YAML or JSON), or example:NAME")
    audit.add_argument("--out", required=True, metavar="PATH.html")
    audit.add_argument("--pdf", action="store_true", help="also write PATH.pdf (the same report, ReportLab)")
    audit.add_argument("--bias", default=None, metavar="SUITE", help="also run a bias suite (attnscope bias --list)")
    audit.add_argument("--generate", type=int, default=None, metavar="N", help="generate up to N tokens first")
    audit.add_argument("--counterfactuals", type=int, default=3, metavar="K", help="at most K (0-5; default 3)")
    audit.add_argument("--chat", action="store_true", help="TEXT is the user message of the model's chat template")
    audit.add_argument("--system", default=None, metavar="TEXT", help="with --chat: a system message")
    audit.add_argument("--part", action="append", default=[], metavar="NAME=SNIPPET", help="a named part (repeat)")
    add_signing_options(audit, "also write PATH.intoto.json, signed (attnscope verify)")
    common.add_pii_option(audit)
    common.add_model_options(audit)
    common.add_output_options(audit)
    audit.set_defaults(run=run)


def _out(value: str) -> Path:
    out = Path(value)
    if out.suffix.lower() not in (".html", ".htm"):
        raise InputError("--out must name an .html file (the JSON and PDF are written beside it)")
    if not out.parent.is_dir():
        raise InputError(f"--out: folder {out.parent} does not exist")
    if out.is_dir():
        raise InputError(f"--out: {out} is a folder")
    return out


def run(args: argparse.Namespace) -> int:
    from attnscope.cli.report import write_atomic
    from attnscope.cli.rules import rules_inputs
    from attnscope.render.audit_data import MAX_COUNTERFACTUALS

    out = _out(args.out)
    rule_set, text, messages = rules_inputs(args)
    if args.bias is not None:
        from attnscope.methods.bias_suites import load_suite

        load_suite(args.bias)  # an unknown suite is refused before the model loads
    if not 0 <= args.counterfactuals <= MAX_COUNTERFACTUALS:
        raise InputError(f"--counterfactuals must be 0 … {MAX_COUNTERFACTUALS} (got {args.counterfactuals})")
    signing_key = signing_key_of(args)
    if args.pii_policy == "drop":
        _masked(args, text, None)
    model = common.load(args)
    from attnscope.cli.heads import named_parts
    from attnscope.render.audit_data import run_audit

    parts = named_parts(text, args.part) if args.part else None
    common.say(args)("auditing …")
    data = common.run_job(
        args,
        lambda bar: run_audit(
            model, None if args.chat else text, rule_set, messages=messages, generate=args.generate, parts=parts,
            bias=args.bias, counterfactuals=args.counterfactuals, progress=bar,
        ),
    )  # fmt: skip
    data = _masked(args, data["text"], data)
    if signing_key is not None:
        from attnscope.governance.provenance import seal, with_signing_key
        from attnscope.governance.signing import key_id

        data["provenance"] = with_signing_key(data["provenance"], key_id(signing_key.public_key()))
        data = seal(data)
    files = _write_files(args, out, data, write_atomic)
    envelope = None
    if signing_key is not None:
        from attnscope.governance.signing import sign_files

        envelope = sign_files(files, data["provenance"], signing_key, out.with_suffix(".intoto.json"))
    if args.json:
        common.emit(data)
    else:
        written = [*files, *([envelope] if envelope is not None else [])]
        print(f"wrote {', '.join(str(path) for path in written)}")
        summary = data["rules"]["summary"]
        print(f"rules: {summary['passed']} passed, {summary['failed']} failed ({summary['critical_failed']} critical), "
              f"{summary['not_evaluated']} not evaluated")  # fmt: skip
    return FAILED if data["rules"]["summary"]["critical_failed"] else 0


def _write_files(args: argparse.Namespace, out: Path, data: dict[str, Any], write: Any) -> list[Path]:
    from attnscope.render.audit_report import audit_html, audit_pdf

    json_path = out.with_suffix(".json")
    write(out, audit_html(data))
    write(json_path, json.dumps(data, ensure_ascii=False, indent=1))
    files = [out, json_path]
    if args.pdf:
        pdf = out.with_suffix(".pdf")
        try:
            audit_pdf(data, pdf)
        except OSError as error:
            raise InputError(f"cannot write {pdf}: {error.strerror or error}") from None
        files.append(pdf)
    return files


def _masked(args: argparse.Namespace, text: str, data: dict[str, Any] | None) -> dict[str, Any]:
    """The audit with personal data masked by --pii-policy (its files leave the process); ``drop``
    refuses a text with personal data before anything runs (``data`` None: the check alone)."""
    from attnscope.governance.audit_masking import mask_audit
    from attnscope.governance.pii import find_pii
    from attnscope.governance.privacy import PiiFoundError

    if data is None:
        if find_pii(text):
            raise InputError("no audit written (--pii-policy drop): the text holds personal data")
        return {}
    try:
        _, masked, count = mask_audit(text, data, args.pii_policy)
    except PiiFoundError as error:
        raise InputError(f"no audit written (--pii-policy drop): {error}") from None
    if count:
        common.say(args)(f"masked {count} personal-data value(s) in the audit (--pii-policy {args.pii_policy})")
    return masked
