"""``attnscope counterfactual``: a text and its edited twin side by side (predictions, attention, heads, scores)."""

from __future__ import annotations

import argparse

from attnscope.cli import common


def add(commands: argparse._SubParsersAction) -> None:
    command = commands.add_parser(
        "counterfactual",
        help="edit the text (replace, delete, insert, swap identity terms) and compare both runs",
        description="Run the model on TEXT and on TEXT edited; show both predictions, the query's attention "
        "on the tokens they share (aligned by characters), the heads whose attention changed most and the "
        "attribution shift. Edits apply to the original's positions, left to right; overlapping edits are refused.",
    )
    common.add_text(command)
    edits = command.add_argument_group("edits (at least one; every occurrence unless --occurrence says otherwise)")
    edits.add_argument("--replace", action="append", default=[], metavar="OLD=NEW", help="replace OLD by NEW")
    edits.add_argument("--delete", action="append", default=[], metavar="SPAN", help="delete SPAN")
    edits.add_argument(
        "--insert",
        action="append",
        default=[],
        metavar="AT=TEXT",
        help="insert TEXT at AT: a character offset, before:WORD or after:WORD",
    )
    edits.add_argument("--swap", default=None, metavar="TABLE", help="swap identity terms of a table: gender")
    edits.add_argument(
        "--occurrence", default="all", help="which occurrences --replace, --delete and --insert WORD touch: "
        "all (default), first, last or N (the N-th)"
    )  # fmt: skip
    edits.add_argument(
        "--inside-words", action="store_true", help="match OLD, SPAN and WORD inside longer words too "
        "(default: whole words only, so he is not found in The; Chinese text matches anywhere)"
    )  # fmt: skip
    command.add_argument("--layer", default="-1", help="layer of the rows and the map (default -1; 4-7 averages)")
    command.add_argument("--head", default="mean", help="head, list 1,3, mean (default) or max")
    command.add_argument(
        "--query", type=int, default=-1, help="a token of the original (default -1: the last token of each text)"
    )
    command.add_argument(
        "--method", default="auto", help="attribution method run on both texts, or none (default: grad-x-input)"
    )
    command.add_argument("--top-k", type=int, default=10, help="next-token candidates per text (1-100, default 10)")
    command.add_argument("--top-heads", type=int, default=10, help="heads listed as changed most (default 10)")
    common.add_model_options(command)
    common.add_output_options(command)
    command.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from attnscope.analysis.edits import Edit, apply_edits, parse_insert, parse_occurrence, parse_replace
    from attnscope.capture.selection import parse_head, parse_layers
    from attnscope.errors import InputError
    from attnscope.methods import catalogue
    from attnscope.methods.counterfactual import collect_edits

    text = common.read_text(args.text, args.text_file)
    if not 1 <= args.top_k <= 100:
        raise InputError("--top-k must be between 1 and 100")
    if args.top_heads < 0:
        raise InputError("--top-heads must be 0 or more")
    occurrence = parse_occurrence(args.occurrence)
    words = not args.inside_words
    edits = [parse_replace(spec, occurrence=occurrence, words=words) for spec in args.replace]
    edits += [Edit("delete", span, occurrence=occurrence, words=words) for span in args.delete]
    edits += [parse_insert(spec, occurrence=occurrence, words=words) for spec in args.insert]
    apply_edits(text, collect_edits(text, edits, args.swap))  # refused before the model loads
    layer, head = parse_layers(args.layer), parse_head(args.head)
    if args.method not in ("auto", "none") and args.method not in catalogue.attribution_names():
        catalogue.get(args.method)  # an unknown name: its one-line error, before the model loads
        raise InputError(f"{args.method} is not a token attribution method; these are: "
                         f"{', '.join(catalogue.attribution_names())} (or none)")  # fmt: skip
    model = common.load(args)
    from attnscope.render.counterfactual import counterfactual_answer, counterfactual_text

    common.say(args)("capturing both texts …")
    body = common.run_job(
        args,
        lambda bar: counterfactual_answer(
            model,
            text,
            edits,
            swap=args.swap,
            layer=layer,
            head=head,
            query=args.query,
            method=args.method,
            top_k=args.top_k,
            top_heads=args.top_heads,
            backend=args.backend,
            progress=bar,
        ),
    )
    return common.output(args, body, counterfactual_text)
