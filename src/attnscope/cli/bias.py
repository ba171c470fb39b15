"""``attnscope bias``: bias probe suites — list them, or run one through a model."""

from __future__ import annotations

import argparse

from attnscope.cli import common


def add(commands: argparse._SubParsersAction) -> None:
    bias = commands.add_parser(
        "bias",
        help="bias probes: paired prompts scored and compared, with bootstrap intervals",
        description="Run a suite of paired probes (she/he after an occupation, two nationalities or names before one "
        "continuation) through a causal LM: the probability gap of each pair, the attention mass from the "
        "prediction position to the marked terms per layer and head, and means over pairs with bootstrap "
        "intervals. Small templated probes are indicative, not a bias certification.",
    )
    chosen = bias.add_mutually_exclusive_group(required=True)
    chosen.add_argument("--list", action="store_true", help="list the packaged suites")
    chosen.add_argument("--suite", metavar="NAME|PATH", help="a packaged suite's name or a suite file (.json)")
    bias.add_argument(
        "--resamples", type=int, default=None, metavar="N", help="bootstrap resamples (1-100,000; default 2,000)"
    )
    bias.add_argument("--seed", type=int, default=0, metavar="S", help="seed of the bootstrap's resampling (default 0)")
    bias.add_argument(
        "--confidence", type=float, default=None, metavar="C", help="interval confidence (0-1; default 0.95)"
    )
    bias.add_argument("--top", type=int, default=5, metavar="K", help="heads listed per pair and term (1-100)")
    common.add_model_options(bias, backend=False)
    common.add_output_options(bias)
    bias.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from attnscope.analysis.bias import DEFAULT_CONFIDENCE, DEFAULT_RESAMPLES, check_bootstrap
    from attnscope.errors import InputError
    from attnscope.methods.bias_suites import list_suites, load_suite
    from attnscope.render.bias import bias_text, suites_json, suites_text

    if args.list:
        given = [flag for flag, value in (("--resamples", args.resamples), ("--confidence", args.confidence),
                                          ("--model", args.model)) if value is not None]  # fmt: skip
        if given:
            raise InputError(f"--list lists the suites; {given[0]} is for --suite")
        return common.output(args, suites_json(list_suites()), suites_text)
    resamples = DEFAULT_RESAMPLES if args.resamples is None else args.resamples
    confidence = DEFAULT_CONFIDENCE if args.confidence is None else args.confidence
    try:  # refused before any model loads
        check_bootstrap(resamples, confidence)
    except InputError as error:
        raise InputError(f"--{error}") from None
    if args.seed < 0:
        raise InputError(f"--seed must be ≥ 0, not {args.seed}")
    if not 1 <= args.top <= 100:
        raise InputError(f"--top must be between 1 and 100, not {args.top}")
    suite = load_suite(args.suite)
    model = common.load(args)
    from attnscope.render.bias import bias_answer

    common.say(args)(f"probing {len(suite.pairs)} pairs of {suite.name} …")
    result = common.run_job(
        args,
        lambda bar: bias_answer(
            model, suite, resamples=resamples, seed=args.seed, confidence=confidence, top=args.top, progress=bar
        ),
    )
    return common.output(args, result, bias_text)
