"""``attnscope syntax``: the parse of a text and which heads track its dependency relations."""

from __future__ import annotations

import argparse

from attnscope.cli import common

MAX_CONLLU_BYTES = 8_000_000


def add(commands: argparse._SubParsersAction) -> None:
    command = commands.add_parser(
        "syntax",
        help="dependency relations of the text and the heads that attend along them (Clark et al. 2019)",
        description="Parse TEXT (spaCy for English when installed, jieba parts of speech for Chinese, or your "
        "CoNLL-U file) and score every head: for each relation, the share of dependents whose most-attended word "
        "is their syntactic head (and the reverse direction), beside the best fixed-offset baseline. "
        "Nothing is downloaded: install a parser with pip install 'attnscope[syntax]'.",
    )
    common.add_text(command)
    command.add_argument(
        "--parse", default=None, metavar="FILE.conllu", help="a CoNLL-U parse of TEXT (its words must spell TEXT)"
    )
    command.add_argument(
        "--parser",
        default="auto",
        choices=("auto", "spacy", "jieba", "conllu"),
        help="auto (default): --parse when given, else spaCy for the text's language, else jieba for Chinese",
    )
    common.add_model_options(command)
    common.add_output_options(command)
    command.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from attnscope.analysis.parsers import parse_text
    from attnscope.errors import InputError

    text = common.read_text(args.text, args.text_file)
    conllu = None
    if args.parse is not None:
        try:
            with open(args.parse, "rb") as handle:
                data = handle.read(MAX_CONLLU_BYTES + 1)
        except OSError as error:
            raise InputError(f"cannot read {args.parse}: {error.strerror}") from None
        if len(data) > MAX_CONLLU_BYTES:
            raise InputError(f"{args.parse} is larger than {MAX_CONLLU_BYTES} bytes")
        try:
            conllu = data.decode("utf-8-sig")
        except UnicodeDecodeError as error:
            raise InputError(f"{args.parse} is not UTF-8 (byte {error.start})") from None
    parse = parse_text(text, args.parser, conllu=conllu)  # a missing parser or a mismatched parse: refused first
    model = common.load(args)
    from attnscope.render.syntax import syntax_answer, syntax_text

    common.say(args)("capturing and scoring heads …")
    body = common.run_job(
        args,
        lambda bar: syntax_answer(model, text, parse=parse, backend=args.backend, progress=bar),
    )
    return common.output(args, body, syntax_text)
