"""``attnscope compare``: several prompts side by side (two: their attention difference), or two models
on one text (``--model A --model B``, or ``--adapter`` over a model)."""

from __future__ import annotations

import argparse

from attnscope.cli import common
from attnscope.errors import InputError

MAX_MODELS = 2


def add(commands: argparse._SubParsersAction) -> None:
    compare = commands.add_parser(
        "compare",
        help="several prompts side by side (two: a difference map), or two models on one text",
        description="Capture every TEXT with one model and tabulate them side by side. With two texts, also "
        "the attention difference (first minus second) on the tokens and the words they share. "
        "With two --model options, or --adapter, compare two models on one TEXT instead: both "
        "tokenizations, predictions, attention differences per matched layer on the words both models "
        "cover (A minus B), head metrics and one attribution method side by side with rank agreement.",
    )
    compare.add_argument(
        "texts", nargs="*", metavar="TEXT", help="the texts ('-': standard input); two models: one TEXT or --file"
    )
    compare.add_argument(
        "--file",
        dest="text_file",
        metavar="PATH",
        default=None,
        help="two models: read their one text from a file instead of TEXT (.txt, .md, .pdf, .docx; as for "
        "the other commands reading one text)",
    )
    compare.add_argument(
        "--layer",
        default=None,
        help="layer of the difference map (default -1; a range 4-7 averages). Two models: layers of A "
        "(default all), each against B's layer at the same depth",
    )
    compare.add_argument("--head", default="mean", help="head, list 1,3, mean (default) or max (two models: mean)")
    compare.add_argument("--granularity", choices=("token", "word", "sentence", "paragraph"), default="word")
    common.add_model_options(compare, stash=True, repeat_model=True)
    models = compare.add_argument_group("two models")
    models.add_argument(
        "--adapter",
        default=None,
        metavar="PATH",
        help="a PEFT (LoRA) adapter folder (adapter_config.json + adapter_model.safetensors) applied over "
        "the last --model (or the default model): compares the model without and with it, or A with B + adapter",
    )
    models.add_argument(
        "--method", default="grad-x-input", help="token attribution run on both models (default grad-x-input; none)"
    )
    models.add_argument("--top-k", type=int, default=5, help="predictions shown for each model (default 5)")
    common.add_output_options(compare)
    compare.set_defaults(run=run)


def _with_model(args: argparse.Namespace, spec: str | None) -> argparse.Namespace:
    return argparse.Namespace(**{**vars(args), "model": spec})


def run(args: argparse.Namespace) -> int:
    specs: list[str] = list(args.model or [])
    if len(specs) > MAX_MODELS:
        raise InputError(f"compare takes at most {MAX_MODELS} --model options; got {len(specs)}")
    if len(specs) == MAX_MODELS or args.adapter is not None:
        return run_models(args, specs)
    return run_texts(_with_model(args, specs[0] if specs else None))


def run_texts(args: argparse.Namespace) -> int:
    from attnscope.capture.selection import parse_head, parse_layers

    if args.text_file is not None:
        raise InputError("--file gives the one text of a model comparison (two --model or --adapter); use TEXT")
    if not args.texts:
        raise InputError("give the texts to compare as TEXT arguments")
    texts = [common.read_text(t) for t in args.texts]
    layer, head = parse_layers("-1" if args.layer is None else args.layer), parse_head(args.head)
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


def model_layers(value: str | None, n_layers: int) -> list[int] | None:
    """``--layer`` of a model comparison as layers of A: None (all), an index, a range or a list."""
    from attnscope.capture.selection import parse_layers

    if value is None:
        return None
    chosen = parse_layers(value)
    if chosen == "all":
        return None
    if isinstance(chosen, int):
        return [chosen]
    if isinstance(chosen, tuple):
        first, last = (bound % n_layers if -n_layers <= bound < n_layers else bound for bound in chosen)
        if not (0 <= first <= last < n_layers):
            raise InputError(f"layers {value} are out of range: model A has {n_layers} layers")
        return list(range(first, last + 1))
    listed = [int(layer) for layer in chosen]
    if len({layer % n_layers if n_layers else layer for layer in listed}) != len(listed):
        raise InputError(f"--layer {value} names a layer twice; name each layer once")
    return listed


def run_models(args: argparse.Namespace, specs: list[str]) -> int:
    """Two models (or a model and the same with ``--adapter``) on one TEXT."""
    if len(args.texts) > 1:
        raise InputError(f"two models are compared on one TEXT; got {len(args.texts)} texts")
    if args.head.strip().lower() != "mean":
        raise InputError("a model comparison combines heads as their mean (heads of two models do not match)")
    if args.granularity == "token":
        raise InputError("two tokenizations share no token units; use --granularity word, sentence or paragraph")
    from attnscope.methods.compare_models import check_method

    text = common.read_text(args.texts[0] if args.texts else None, args.text_file)
    method = check_method(args.method.strip())
    if args.top_k < 1:
        raise InputError("--top-k must be at least 1")
    adapter = None
    if args.adapter is not None:
        from attnscope.models.adapters import adapter_files

        adapter_files(args.adapter)  # checked before any model loads
        adapter = args.adapter
    first = common.load(_with_model(args, specs[0] if specs else None))
    second = first  # one --model (with --adapter), or the same model twice: loaded once
    if len(specs) == MAX_MODELS and specs[1].strip() != specs[0].strip():
        second = common.load(_with_model(args, specs[1]))
    if adapter is not None:
        from attnscope.models.adapters import with_adapter

        common.say(args)(f"applying adapter {adapter} …")
        second = with_adapter(second, adapter)
    from attnscope.methods.compare_models import compare_two_models
    from attnscope.render.json import model_comparison_json
    from attnscope.render.model_compare import model_comparison_text

    layers = model_layers(args.layer, first.arch.layers or 0) if args.layer is not None else None
    comparison = common.run_job(
        args,
        lambda bar: compare_two_models(
            first, second, text, granularity=args.granularity, method=method, layers=layers, top_k=args.top_k,
            progress=bar, layer_option="--layer",
        ),
    )  # fmt: skip
    return common.output(args, model_comparison_json(comparison), model_comparison_text)
