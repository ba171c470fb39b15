"""``attnscope heads`` and ``attnscope parts``: every head measured, and attention to named parts of a prompt."""

from __future__ import annotations

import argparse

from attnscope.capture.selection import STACKS
from attnscope.capture.tokens import Part
from attnscope.cli import common
from attnscope.errors import InputError


def add(commands: argparse._SubParsersAction) -> None:
    heads = commands.add_parser(
        "heads",
        help="metrics and type labels for every layer x head",
        description="Entropy, sparsity, locality, sink mass, previous-token score, focus consistency and (causal "
        "models) induction score of every head over TEXT, with a label per head (rules in attnscope.analysis.heads).",
    )
    common.add_text(heads)
    heads.add_argument("--threshold", type=float, default=0.01, help="sparsity threshold (default 0.01)")
    heads.add_argument("--stack", choices=STACKS, default=None)
    common.add_model_options(heads, stash=True)
    common.add_output_options(heads)
    heads.set_defaults(run=run_heads)

    parts = commands.add_parser(
        "parts",
        help="attention mass from the query (or a part) to each named part of TEXT, layer by layer",
        description="Name parts of TEXT as NAME=SNIPPET (the snippet's first occurrence after the previous part); "
        "prints the attention mass from the query token, or from a part (--from NAME), to each part.",
    )
    common.add_text(parts)
    parts.add_argument("--part", action="append", required=True, metavar="NAME=SNIPPET", help="a named part (repeat)")
    parts.add_argument("--from", dest="source", default=None, help="a part name or token index (default: last token)")
    common.add_model_options(parts, stash=True)
    common.add_output_options(parts)
    parts.set_defaults(run=run_parts)


def run_heads(args: argparse.Namespace) -> int:
    from attnscope.methods import catalogue

    text = common.read_text(args.text, args.text_file)
    catalogue.get("head-metrics").parse_options({"threshold": args.threshold})  # refused before loading
    model = common.load(args)
    from attnscope.capture import capture
    from attnscope.methods.heads import measure_heads
    from attnscope.render.json import heads_json
    from attnscope.render.tables import heads_text

    def job(bar: object) -> object:
        trace = capture(model, text, predict="none", progress=bar, **common.capture_options(args))
        return measure_heads(
            model, trace, threshold=args.threshold, stack=args.stack, backend=args.backend, progress=bar
        )

    body = heads_json(common.run_job(args, job))
    return common.output(args, body, heads_text)


def named_parts(text: str, given: list[str]) -> list[Part]:
    """``NAME=SNIPPET`` items as parts: each snippet found in order after the previous one."""
    found, cursor = [], 0
    for item in given:
        name, sep, snippet = item.partition("=")
        if not sep or not name.strip() or not snippet:
            raise InputError(f"--part must look like NAME=SNIPPET; got {item!r}")
        where = text.find(snippet, cursor)
        if where < 0:
            where = text.find(snippet)
        if where < 0:
            raise InputError(f"part {name.strip()!r}: {snippet!r} is not in the text")
        found.append(Part(name.strip(), where, where + len(snippet)))
        cursor = where + len(snippet)
    return found


def run_parts(args: argparse.Namespace) -> int:
    text = common.read_text(args.text, args.text_file)
    parts = named_parts(text, args.part)
    source: int | str | None = args.source
    if isinstance(source, str) and source.lstrip("-").isdigit():
        source = int(source)
    model = common.load(args)
    from attnscope.analysis.parts import part_attention
    from attnscope.capture import capture
    from attnscope.render.json import parts_json
    from attnscope.render.tables import parts_text

    trace = common.run_job(
        args, lambda bar: capture(model, text, predict="none", progress=bar, **common.capture_options(args))
    )
    names, mass = part_attention(trace, parts, query=source)
    body = parts_json(trace, parts, names, mass, source if source is not None else -1)
    return common.output(args, body, parts_text)
