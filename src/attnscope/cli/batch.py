"""``attnscope batch PROMPTS.jsonl --model SPEC --out ATLAS/``: the corpus head atlas (attnscope.batch),
computed here or on Ray, resumable, written as Parquet shards with an index."""

from __future__ import annotations

import argparse
from typing import Any

from attnscope.cli import common


def add(commands: argparse._SubParsersAction) -> None:
    from attnscope.batch import layout

    command = commands.add_parser(
        "batch",
        help="head metrics, predictions and method scores over a corpus, as Parquet shards (local or Ray)",
        description='Capture every prompt of PROMPTS (JSON Lines: one {"text", "id"?, "target"?} per line; '
        "or .txt: one prompt per line) on the model and keep, per prompt, its tokens, top-k predictions, every "
        "head's metrics (the numbers of `attnscope heads`) and each chosen method's token scores, in "
        "ATLAS/prompts and ATLAS/heads Parquet shards indexed by ATLAS/atlas.json, then every head's "
        "distribution of each metric across the corpus in ATLAS/summary.parquet. Interrupted, the same "
        "command continues where it stopped; `attnscope serve --atlas ATLAS` shows it.",
    )
    command.add_argument("prompts", metavar="PROMPTS", help="the corpus: .jsonl (JSON Lines) or .txt (one per line)")
    command.add_argument("--out", required=True, metavar="ATLAS", help="the atlas folder (new, empty, or this atlas's)")
    command.add_argument(
        "--methods", default="", metavar="M1,M2", help="token-scoring methods to run per prompt (attnscope methods)"
    )
    command.add_argument("--engine", choices=layout.ENGINES, default="local", help="local (default) or ray")
    command.add_argument(
        "--address",
        default=None,
        metavar="RAY_ADDRESS",
        help="--engine ray: join this cluster (auto, HOST:6379 or ray://HOST:10001; the atlas folder must be on a "
        "file system every node sees); default: a private cluster on 127.0.0.1",
    )
    command.add_argument("--workers", type=int, default=None, help="--engine ray: actors, one model each (default 1)")
    command.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads per model (default 1; each Ray actor takes one CPU per thread); the engines agree "
        "byte for byte at the same count",
    )
    command.add_argument("--shard-size", type=int, default=layout.DEFAULT_SHARD_SIZE, help="prompts per shard")
    command.add_argument("--top-k", type=int, default=layout.DEFAULT_TOP_K, help="next-token candidates kept")
    command.add_argument("--threshold", type=float, default=0.01, help="head metrics' sparsity threshold")
    command.add_argument(
        "--store",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="keep each prompt's analysis as a run (attnscope runs list), its id in the prompts shard (default off)",
    )
    command.add_argument(
        "--pii-policy",
        choices=("mask", "off"),
        default="mask",
        help="personal data in the written texts, tokens and predictions and in stored runs: mask it (default) or off",
    )
    command.add_argument(
        "--overwrite", action="store_true", help="replace another atlas already in --out (its own files only)"
    )
    common.add_model_options(command)
    command.add_argument("--json", action="store_true", help="print the finished index (atlas.json) as JSON")
    command.add_argument("--quiet", "-q", action="store_true", help="no progress on stderr")
    command.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from attnscope.batch.analyse import AtlasOptions
    from attnscope.batch.corpus import read_corpus
    from attnscope.batch.engines import build_atlas, check_options

    methods = tuple(name.strip() for name in args.methods.split(",") if name.strip())
    options = AtlasOptions(
        methods=methods, top_k=args.top_k, threshold=args.threshold, pii_policy=args.pii_policy,
        backend=args.backend, store=args.store, threads=args.threads,
    )  # fmt: skip
    workers = args.workers if args.workers is not None else 1
    check_options(options, args.engine, workers, args.shard_size)  # refused before the corpus is read
    if args.address is not None and args.engine != "ray":
        from attnscope.errors import InputError

        raise InputError("--address is for --engine ray")
    corpus = read_corpus(args.prompts)  # every line checked before any model loads
    spec = common.model_spec(args.model)
    device = common.check_device(args.device)
    common.quiet_libraries()
    line = common.say(args)
    line(f"{len(corpus.prompts):,} prompts; {spec} on the {args.engine} engine …")
    bar = common.progress_bar(args)
    try:
        index = build_atlas(
            corpus, spec, args.out, options, engine=args.engine, workers=workers, address=args.address,
            shard_size=args.shard_size, device=device, dtype=args.dtype, trust_remote_code=args.trust_remote_code,
            overwrite=args.overwrite, origin="cli", progress=bar,
            say=None if bar is not None else line,
        )  # fmt: skip
    finally:
        if bar is not None:
            bar.close()
    if args.json:
        common.emit(index)
    else:
        print(atlas_text(index, args.out))
    return 0


def atlas_text(index: dict[str, Any], out: str) -> str:
    """Where the atlas is and what it holds."""
    model = index["model"]
    rows = sum(shard["rows"]["heads"] for shard in index["shards"])
    state = "complete" if index.get("complete") else "incomplete"
    return (
        f"atlas {out} ({state}): {index['corpus']['prompts']:,} prompts, {len(index['shards'])} shards, "
        f"{rows:,} head rows; {model['name']} ({model['num_layers']} layers x {model['num_heads']} heads); "
        f"methods: {', '.join(index['methods']) or 'none'}"
    )
