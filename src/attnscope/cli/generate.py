"""``attnscope generate``: generate after a prompt and show, step by step, each token's
probability, its runners-up and what it attended to."""

from __future__ import annotations

import argparse

from attnscope.cli import common
from attnscope.cli import methods as methods_cli
from attnscope.errors import InputError
from attnscope.methods import catalogue

# the library's argument names -> this command's flags, for check_settings' messages
FLAGS = {
    "max_new_tokens": "--max-new-tokens",
    "do_sample": "--sample",
    "num_beams": "--beams",
    "temperature": "--temperature",
    "top_p": "--top-p",
    "top_k": "--sample-top-k",
    "seed": "--seed",
    "stop": "--stop",
}


def add(commands: argparse._SubParsersAction) -> None:
    generate = commands.add_parser(
        "generate",
        help="generate after TEXT and explain each generated token",
        description="Generate up to --max-new-tokens tokens after TEXT with the model's KV cache (greedy unless "
        "--sample or --beams) and show, for each step, the token, its probability, the top candidates and "
        "what the position that predicted it attended to.",
    )
    common.add_text(generate)
    group = generate.add_argument_group("generation")
    group.add_argument("--max-new-tokens", type=int, default=64, help="at most this many new tokens (default 64)")
    group.add_argument("--chat", action="store_true", help="TEXT is the user message of the model's chat template")
    group.add_argument("--system", default=None, metavar="TEXT", help="with --chat: a system message")
    group.add_argument("--sample", action="store_true", help="sample instead of greedy decoding")
    group.add_argument("--temperature", type=float, default=None, help="with --sample (default: the model's)")
    group.add_argument("--top-p", type=float, default=None, help="with --sample: nucleus sampling mass")
    group.add_argument(
        "--sample-top-k", type=int, default=None, metavar="K", help="with --sample: keep the K likeliest"
    )
    group.add_argument("--seed", type=int, default=None, help="seed for --sample (the same seed, the same tokens)")
    group.add_argument("--beams", type=int, default=1, help="beam search with this many beams (default 1: none)")
    group.add_argument(
        "--stop", action="append", default=None, metavar="TEXT", help="stop once TEXT is generated (repeatable)"
    )
    view = generate.add_argument_group("view")
    view.add_argument("--layer", default="-1", help="layer index (negative from the end), a range 4-7 or all (mean)")
    view.add_argument("--head", default="mean", help="head index, a list 1,3 (their mean), mean (default) or max")
    view.add_argument(
        "--stack", choices=("decoder", "cross"), default=None, help="encoder-decoders: decoder or cross (default)"
    )
    view.add_argument("--top-k", type=int, default=10, help="candidates shown per step (1-100, default 10)")
    attribution = generate.add_argument_group("per-step attribution")
    attribution.add_argument(
        "--attribute",
        choices=catalogue.step_names(),
        default=None,
        metavar="METHOD",
        help=f"also score every earlier token for each step: {', '.join(catalogue.step_names())}",
    )
    methods_cli.add_method_options(generate)
    generate.add_argument("--save", metavar="PATH", help="also save the whole generation (.safetensors) to PATH")
    common.add_model_options(generate, backend=False, stash=True)
    common.add_output_options(generate)
    common.add_store_option(generate)
    generate.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from attnscope.capture.selection import parse_head, parse_layers

    text = common.read_text(args.text, args.text_file)
    if not 1 <= args.top_k <= 100:
        raise InputError("--top-k must be between 1 and 100")
    if args.system is not None and not args.chat:
        raise InputError("--system is for --chat")
    if not args.sample and (args.temperature, args.top_p, args.sample_top_k, args.seed) != (None,) * 4:
        raise InputError("--temperature, --top-p, --sample-top-k and --seed are for --sample")
    layer, head = parse_layers(args.layer), parse_head(args.head)
    options = methods_cli.method_options(args, args.attribute) if args.attribute else {}
    if not args.attribute and methods_cli.method_options(args, None):
        raise InputError("method options (--steps, --baseline, ...) are for --attribute METHOD")
    if head is None:
        raise InputError("--head: a generation shows one row per step: a head, a list, mean or max (not all)")
    from attnscope.capture.decoding import check_settings

    check_settings(  # refused before the model loads, in the flags' names
        args.max_new_tokens,
        args.sample,
        args.temperature,
        args.top_p,
        args.sample_top_k,
        args.seed,
        args.beams,
        args.stop,
        names=FLAGS,
    )
    if args.save:
        from pathlib import Path

        from attnscope.capture.trace_file import check_destination

        check_destination(Path(args.save))
    model = common.load(args)
    if model.kind != "masked":  # the view is checked before the generation runs (generate() refuses encoders)
        from attnscope.render.json import check_view

        try:
            stack = check_view(model, layer, head, args.stack)
        except InputError as error:
            raise InputError(f"--{error}" if str(error).startswith("stack") else str(error)) from None
    else:
        stack = None
    from attnscope.capture.generation import generate
    from attnscope.render.json import generation_json
    from attnscope.render.text import generation_text

    messages = None
    if args.chat:
        messages = ([{"role": "system", "content": args.system}] if args.system is not None else []) + [
            {"role": "user", "content": text}
        ]
    common.say(args)("generating …")
    trace = common.run_job(
        args,
        lambda bar: generate(
            model,
            None if args.chat else text,
            messages=messages,
            max_new_tokens=args.max_new_tokens,
            do_sample=args.sample,
            temperature=args.temperature,
            top_p=args.top_p,
            top_k=args.sample_top_k,
            seed=args.seed,
            num_beams=args.beams,
            stop=args.stop,
            candidates=args.top_k,
            stash=args.stash,
            stash_budget=args.stash_budget,
            progress=bar,
        ),
    )
    result = generation_json(trace, layer=layer, head=head, top_k=args.top_k, stack=stack)
    if args.attribute:
        from attnscope.methods.steps import step_attribution
        from attnscope.render.json import step_attribution_json

        common.say(args)(f"attributing every step by {args.attribute} …")
        scored = common.run_job(
            args, lambda bar: step_attribution(model, trace, args.attribute, progress=bar, **options)
        )
        result["attribution"] = step_attribution_json(scored)
    if args.save:
        path = trace.save(args.save)
        common.say(args)(f"saved generation to {path}")
    result = common.store_run(args, "generation", result["prompt"]["text"], result)
    return common.output(args, result, generation_text)
