"""``attnscope analyze``: attention from one token and the next-token prediction."""

from __future__ import annotations

import argparse
from typing import Any

from attnscope.capture.selection import STACKS
from attnscope.cli import common


def add(commands: argparse._SubParsersAction) -> None:
    analyze = commands.add_parser(
        "analyze",
        help="attention from one token and the next-token prediction",
        description="Run the model once over TEXT; show the attention of one query token (default: the last) "
        "in one layer (default: the last) averaged over heads, and the top next-token candidates.",
    )
    common.add_text(analyze)
    analyze.add_argument("--layer", default="-1", help="layer index (negative from the end), a range 4-7 or all (mean)")
    analyze.add_argument("--head", default="mean", help="head index, a list 1,3 (their mean), mean (default) or max")
    analyze.add_argument("--query", type=int, default=-1, help="query token index (default -1: the last token)")
    analyze.add_argument("--stack", choices=STACKS, default=None, help="attention stack (encoder-decoders)")
    analyze.add_argument("--top-k", type=int, default=10, help="how many next-token candidates (1-100, default 10)")
    analyze.add_argument("--target", default=None, help="encoder-decoders: decoder-side text")
    analyze.add_argument("--save", metavar="PATH", help="also save the whole trace (.safetensors) to PATH")
    common.add_model_options(analyze, stash=True)
    common.add_output_options(analyze)
    common.add_store_option(analyze)
    add_dp_options(analyze)
    analyze.set_defaults(run=run)


def add_dp_options(command: argparse.ArgumentParser) -> None:
    """--dp-epsilon, --dp-mechanism, --dp-delta: differential privacy on the released numbers."""
    group = command.add_argument_group("differential privacy (OpenDP; README: Differential privacy)")
    group.add_argument(
        "--dp-epsilon",
        type=float,
        default=None,
        metavar="E",
        help="noise the released weights or scores with ε = E (0.001 <= E <= 100) before they are printed or stored",
    )
    group.add_argument("--dp-mechanism", choices=("laplace", "gaussian"), default="laplace", help="default laplace")
    group.add_argument("--dp-delta", type=float, default=None, metavar="D", help="δ of the Gaussian mechanism (0-1)")


def check_dp(args: argparse.Namespace) -> None:
    """The DP options refused before any model loads (one-line errors)."""
    from attnscope.errors import InputError

    if args.dp_epsilon is None:
        if args.dp_delta is not None or args.dp_mechanism != "laplace":
            raise InputError("--dp-mechanism and --dp-delta need --dp-epsilon")
        return
    from attnscope.governance.dp import check_parameters

    check_parameters(args.dp_epsilon, args.dp_mechanism, args.dp_delta)


def privatized(args: argparse.Namespace, kind: str, body: dict[str, Any]) -> dict[str, Any]:
    """``body`` released with differential privacy when ``--dp-epsilon`` asks for it."""
    if args.dp_epsilon is None:
        return body
    from attnscope.governance.dp import privatize_answer

    return privatize_answer(kind, body, args.dp_epsilon, mechanism=args.dp_mechanism, delta=args.dp_delta)


def run(args: argparse.Namespace) -> int:
    from attnscope.capture.selection import parse_head, parse_layers
    from attnscope.errors import InputError

    text = common.read_text(args.text, args.text_file)
    if not 1 <= args.top_k <= 100:
        raise InputError("--top-k must be between 1 and 100")
    check_dp(args)
    if args.save and args.dp_epsilon is not None:
        raise InputError("--save writes the exact trace: it cannot be combined with --dp-epsilon")
    layer, head = parse_layers(args.layer), parse_head(args.head)
    if args.save:  # a folder or a path under a file is refused before the model loads
        from pathlib import Path

        from attnscope.capture.trace_file import check_destination

        check_destination(Path(args.save))
    model = common.load(args)
    from attnscope.capture import capture
    from attnscope.capture.selection import default_stack
    from attnscope.render.json import analysis_json
    from attnscope.render.text import analysis_text

    stack = args.stack or default_stack(model.kind)
    if stack not in model.arch.stacks:
        raise InputError(f"--stack {stack}: this {model.kind} model has stacks {', '.join(sorted(model.arch.stacks))}")
    common.say(args)("capturing …")
    # Without --save only what is shown is computed: the layer shown, predictions at the query's
    # position (encoder-decoders capture every layer: their stacks may have different depths).
    one_layer = isinstance(layer, int) and not args.save and model.kind != "seq2seq"
    layers = [layer] if one_layer else None
    trace = common.run_job(
        args,
        lambda bar: capture(
            model,
            text,
            target=args.target,
            layers=layers,
            **common.capture_options(args),
            top_k=args.top_k,
            progress=bar,
        ),
    )
    result = analysis_json(trace, layer=layer, head=head, query=args.query, top_k=args.top_k, stack=stack)
    result = privatized(args, "analysis", result)  # before anything prints or stores it
    if args.save:
        path = trace.save(args.save)
        common.say(args)(f"saved trace to {path}")
    return common.output(args, common.store_run(args, "analysis", text, result), analysis_text)
