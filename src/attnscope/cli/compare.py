"""``attnscope compare``: several prompts side by side; for two, the attention difference on shared tokens."""

from __future__ import annotations

import argparse

from attnscope.cli import common


def add(commands: argparse._SubParsersAction) -> None:
    compare = commands.add_parser(
        "compare",
        help="several prompts side by side (prediction, head metrics, most attended words); two: a difference map",
        description="Capture every TEXT with one model and tabulate them side by side. With two texts, also "
        "the attention difference (first minus second) on the tokens they share.",
    )
    compare.add_argument("texts", nargs="+", metavar="TEXT")
    compare.add_argument("--layer", default="-1", help="layer of the difference map (default -1; a range 4-7 averages)")
    compare.add_argument("--head", default="mean", help="head, list 1,3, mean (default) or max")
    compare.add_argument("--granularity", choices=("token", "word", "sentence", "paragraph"), default="word")
    common.add_model_options(compare, stash=True)
    common.add_output_options(compare)
    compare.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from attnscope.capture.selection import parse_head, parse_layers

    texts = [common.read_text(t) for t in args.texts]
    layer, head = parse_layers(args.layer), parse_head(args.head)
    model = common.load(args)
    from attnscope.analysis.compare import compare_prompts
    from attnscope.capture import capture
    from attnscope.render.json import comparison_json
    from attnscope.render.tables import comparison_text

    traces = common.run_job(
        args,
        lambda bar: [
            capture(model, text, predict="last", progress=bar, **common.capture_options(args)) for text in texts
        ],
    )
    summaries, difference, view = compare_prompts(traces, granularity=args.granularity, layer=layer, head=head)
    body = comparison_json(traces, summaries, difference, view)
    return common.output(args, body, comparison_text)
