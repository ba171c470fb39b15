"""``attnscope graph`` and ``attnscope sankey``: the attention graph of one layer, and the information
flow from the input tokens to the prediction as a Sankey (the JSON of ``GET /api/traces/{id}/graph``
and ``/sankey``)."""

from __future__ import annotations

import argparse

from attnscope.analysis.graph import DEFAULT_MAX_EDGES, DEFAULT_THRESHOLD, MAX_EDGES_LIMIT
from attnscope.analysis.sankey import DEFAULT_TOP, MAX_TOP
from attnscope.capture.selection import STACKS
from attnscope.cli import common
from attnscope.errors import InputError


def add(commands: argparse._SubParsersAction) -> None:
    graph = commands.add_parser(
        "graph",
        help="the attention graph of one layer: an edge for every weight over a threshold",
        description="Tokens of TEXT as nodes and an edge query -> key for every attention weight of one layer "
        "(heads combined by --head) at least --threshold; the --max-edges heaviest are kept.",
    )
    common.add_text(graph)
    graph.add_argument("--layer", default="-1", help="layer index (negative from the end; default -1: the last)")
    graph.add_argument("--head", default="mean", help="head index, a list 1,3 (their mean), mean (default) or max")
    graph.add_argument(
        "--threshold",
        type=float,
        default=DEFAULT_THRESHOLD,
        help=f"smallest weight kept, 0-1 (default {DEFAULT_THRESHOLD})",
    )
    graph.add_argument(
        "--max-edges",
        type=int,
        default=DEFAULT_MAX_EDGES,
        help=f"keep the heaviest edges, 1-{MAX_EDGES_LIMIT} (default {DEFAULT_MAX_EDGES})",
    )
    graph.add_argument("--stack", choices=STACKS, default=None, help="attention stack (encoder-decoders)")
    common.add_model_options(graph, stash=True)
    common.add_output_options(graph)
    graph.set_defaults(run=run_graph)

    sankey = commands.add_parser(
        "sankey",
        help="information flow from the input tokens to the prediction (attention rollout), as a Sankey",
        description="Attention rollout from every input token through every layer to the prediction (the last "
        "position), for the --top tokens with the most flow and any --tokens; the others are one 'other' node. "
        "Each node passes on exactly what it receives (README: Information flow).",
    )
    common.add_text(sankey)
    sankey.add_argument("--top", type=int, default=DEFAULT_TOP, help=f"tokens with the most flow, 0-{MAX_TOP}")
    sankey.add_argument("--tokens", default=None, metavar="I,J,...", help="more token positions to show")
    sankey.add_argument("--query", type=int, default=-1, help="the prediction's position (default -1: the last)")
    sankey.add_argument("--head", default="mean", help="heads combined in every layer: an index, 1,3, mean or max")
    sankey.add_argument("--residual", type=float, default=0.5, help="residual share r in r*I + (1-r)*A (0-1)")
    sankey.add_argument("--stack", choices=("decoder", "encoder"), default=None, help="self-attention stack")
    common.add_model_options(sankey, stash=True)
    common.add_output_options(sankey)
    sankey.set_defaults(run=run_sankey)


def token_list(value: str | None) -> list[int]:
    """``--tokens 1,4,7`` as positions (negative from the end)."""
    if not value:
        return []
    try:
        return [int(item) for item in value.split(",")]
    except ValueError:
        raise InputError(f"--tokens must be token positions like 1,4,7; got {value!r}") from None


def run_graph(args: argparse.Namespace) -> int:
    from attnscope.analysis.graph import check_max_edges, check_threshold
    from attnscope.capture.selection import parse_head, parse_layers

    text = common.read_text(args.text, args.text_file)
    check_threshold(args.threshold)
    check_max_edges(args.max_edges)
    layer = parse_layers(args.layer)
    if not isinstance(layer, int):
        raise InputError(f"--layer must be one layer index; got {args.layer!r}")
    parse_head(args.head)
    model = common.load(args)
    from attnscope.analysis.graph import attention_graph
    from attnscope.capture import capture
    from attnscope.render.graph import graph_json, graph_text

    layers = None if model.kind == "seq2seq" else [layer]  # encoder-decoders: stacks of different depths
    trace = common.run_job(
        args,
        lambda bar: capture(model, text, layers=layers, predict="none", progress=bar, **common.capture_options(args)),
    )
    graph = attention_graph(
        trace, layer=layer, head=args.head, threshold=args.threshold, max_edges=args.max_edges, stack=args.stack
    )
    return common.output(args, graph_json(trace, graph), graph_text)


def run_sankey(args: argparse.Namespace) -> int:
    from attnscope.capture.selection import parse_head

    text = common.read_text(args.text, args.text_file)
    tokens = token_list(args.tokens)
    if not 0 <= args.top <= MAX_TOP:
        raise InputError(f"--top must be between 0 and {MAX_TOP}")
    if not 0.0 <= args.residual <= 1.0:  # NaN refused too
        raise InputError("--residual must be between 0 and 1")
    parse_head(args.head)
    model = common.load(args)
    from attnscope.analysis.sankey import flow_sankey
    from attnscope.capture import capture
    from attnscope.render.graph import sankey_json, sankey_text

    trace = common.run_job(args, lambda bar: capture(model, text, progress=bar, **common.capture_options(args)))
    sankey = flow_sankey(
        trace,
        query=args.query,
        top=args.top,
        tokens=tokens,
        head=args.head,
        residual=args.residual,
        stack=args.stack,
    )
    return common.output(args, sankey_json(trace, sankey), sankey_text)
