"""``attnscope methods``, ``attnscope attribute`` and ``attnscope agreement``: the method catalogue and its use.

The choices of ``--method`` and the method options (``--steps``, ``--mode``, ...) come from the
catalogue (:mod:`attnscope.methods.catalogue`), so a registered method is usable here at once.
"""

from __future__ import annotations

import argparse
from typing import Any

from attnscope.cli import common
from attnscope.cli.analyze import add_dp_options, check_dp, privatized
from attnscope.errors import InputError
from attnscope.methods import catalogue
from attnscope.methods.spec import OBJECTIVES


def add(commands: argparse._SubParsersAction) -> None:
    listing = commands.add_parser(
        "methods",
        help="list the methods: what each needs, its options and limits",
        description="The method catalogue; --json prints the same object as GET /api/methods.",
    )
    listing.add_argument("--json", action="store_true")
    listing.add_argument("--markdown", action="store_true", help="the README's method table")
    listing.set_defaults(run=run_methods)

    names = catalogue.attribution_names()
    attribute = commands.add_parser(
        "attribute",
        help="token importance for a prediction by one method",
        description="Score every unit of TEXT (token, word, sentence or paragraph) for the prediction made at the "
        "last token (or --query): one raw score per unit. Methods: " + ", ".join(names) + ".",
    )
    common.add_text(attribute)
    attribute.add_argument("--method", required=True, choices=names)
    _add_target_options(attribute)
    attribute.add_argument("--granularity", choices=catalogue.GRANULARITIES, default="token")
    attribute.add_argument("--query", type=int, default=-1, help="token whose prediction is explained (default -1)")
    add_method_options(attribute)
    scorer = attribute.add_argument_group("black-box scoring (occlusion)")
    scorer.add_argument(
        "--scorer-url", default=None, help="an OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1"
    )
    scorer.add_argument(
        "--scorer-api",
        choices=("completions", "chat"),
        default="completions",
        help="completions: echoed prompt log-probabilities (any target); chat: the answer's first token",
    )
    scorer.add_argument("--scorer-model", default=None, help="model name sent to the endpoint")
    scorer.add_argument(
        "--scorer-api-key-env",
        metavar="VARIABLE",
        default=None,
        help="name of the environment variable holding the key",
    )
    common.add_model_options(attribute)
    common.add_output_options(attribute)
    common.add_store_option(attribute)
    add_dp_options(attribute)
    attribute.set_defaults(run=run_attribute)

    agreement = commands.add_parser(
        "agreement",
        help="every attribution method on TEXT and how well their rankings agree",
        description="Run the token attribution methods on TEXT and print Spearman's rho between their unit scores.",
    )
    common.add_text(agreement)
    agreement.add_argument("--methods", nargs="+", choices=names, default=None)
    agreement.add_argument("--granularity", choices=catalogue.GRANULARITIES, default="word")
    agreement.add_argument("--target", default=None, help="text to explain instead of the predicted next token")
    agreement.add_argument("--query", type=int, default=-1, help="token whose prediction is explained (default -1)")
    add_method_options(agreement)
    add_dp_options(agreement)
    common.add_model_options(agreement)
    common.add_output_options(agreement)
    agreement.set_defaults(run=run_agreement)


def _add_target_options(command: argparse.ArgumentParser) -> None:
    command.add_argument("--target", default=None, help="text to explain instead of the predicted next token")
    command.add_argument(
        "--objective",
        choices=OBJECTIVES,
        default=None,
        help="what gradient/occlusion methods explain (default: next-token, or continuation with --target)",
    )


def add_method_options(command: argparse.ArgumentParser) -> None:
    """One flag per option name of the catalogue's attribution methods (checked by the catalogue)."""
    group = command.add_argument_group("method options (attnscope methods lists them)")
    seen: dict[str, list[str]] = {}
    helps: dict[str, str] = {}
    for spec in catalogue.methods(scores_tokens=True):
        for option in spec.options:
            seen.setdefault(option.name, []).append(spec.name)
            # argparse formats help with %: a catalogue text saying "5 %" must not read as a format
            helps.setdefault(option.name, f"{option.help} (default {option.default})".replace("%", "%%"))
    for name, owners in seen.items():
        group.add_argument(f"--{name}", default=None, metavar=name.upper(), help=f"{', '.join(owners)}: {helps[name]}")


def method_options(args: argparse.Namespace, method: str | None) -> dict[str, Any]:
    """The method options given on the command line, checked against the catalogue before any model
    loads: names another method owns and values out of their range are refused at once."""
    given = {
        option.name: getattr(args, option.name, None)
        for spec in catalogue.methods(scores_tokens=True)
        for option in spec.options
        if getattr(args, option.name, None) is not None
    }
    if method is None:
        return catalogue.shared_options(getattr(args, "methods", None), given)
    spec = catalogue.get(method)
    checked = spec.parse_options(given)  # an InputError for a foreign option or a value out of range
    return {name: checked[name] for name in given}


def run_methods(args: argparse.Namespace) -> int:
    from attnscope.render.tables import methods_markdown, methods_text

    body = catalogue.catalogue_json()
    return common.output(args, body, methods_markdown if args.markdown else methods_text)


def _scorer(args: argparse.Namespace) -> Any:
    if not args.scorer_url:
        for flag in ("scorer_model", "scorer_api_key_env"):
            if getattr(args, flag):
                raise InputError(f"--{flag.replace('_', '-')} is for --scorer-url")
        return None
    if args.method != "occlusion":
        raise InputError("--scorer-url is for --method occlusion")
    from attnscope.attribution.scorers import http

    kind = http.OpenAIChatScorer if args.scorer_api == "chat" else http.OpenAICompletionsScorer
    return kind(args.scorer_url, args.scorer_model, api_key_env=args.scorer_api_key_env)


def run_attribute(args: argparse.Namespace) -> int:
    text = common.read_text(args.text, args.text_file)
    options = method_options(args, args.method)
    check_dp(args)
    scorer = _scorer(args)
    # a black-box scorer alone explains a remote model: no local model unless --model names one
    model = None if scorer is not None and args.model is None else common.load(args)
    from attnscope.methods.run import attribute
    from attnscope.render.json import attribution_json
    from attnscope.render.tables import attribution_text

    common.say(args)(f"{args.method} …")
    result = common.run_job(
        args,
        lambda bar: attribute(
            model,
            text,
            args.method,
            target=args.target,
            objective=args.objective,
            granularity=args.granularity,
            query=args.query,
            scorer=scorer,
            backend=args.backend,
            progress=bar,
            **options,
        ),
    )
    body = privatized(args, "attribution", attribution_json(result))  # before anything prints or stores it
    body = common.store_run(args, "attribution", text, body, args.method)
    return common.output(args, body, attribution_text)


def run_agreement(args: argparse.Namespace) -> int:
    text = common.read_text(args.text, args.text_file)
    if args.methods is not None and len(set(args.methods)) < 2:
        raise InputError("--methods: name at least two different methods to compare (or leave it out: all)")
    options = catalogue.shared_options(args.methods, method_options(args, None))
    check_dp(args)
    model = common.load(args)
    from attnscope.methods.agreement import compare_methods
    from attnscope.render.json import agreement_json
    from attnscope.render.tables import agreement_text

    comparison = common.run_job(
        args,
        lambda bar: compare_methods(
            model,
            text,
            methods=args.methods,
            granularity=args.granularity,
            target=args.target,
            query=args.query,
            backend=args.backend,
            progress=bar,
            **options,
        ),
    )
    body = agreement_json(comparison)
    if args.dp_epsilon is not None:  # before anything prints it
        from attnscope.governance.dp_methods import privatize_methods

        body = privatize_methods("agreement", body, args.dp_epsilon, mechanism=args.dp_mechanism, delta=args.dp_delta)
    return common.output(args, body, agreement_text)
