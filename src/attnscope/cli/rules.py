"""``attnscope rules``: check a rule file against what a model attends to (``check``), explain what is
wrong with a rule file, line by line (``validate``), and list or print the shipped examples (``examples``).

Exit status of ``check``: 0 when no critical rule failed, 1 when one did (with ``--strict``, also when
one could not be evaluated), 2 for an error (a bad file, a bad option, a model that does not load).
``validate``: 0 for a valid file, 1 when it has problems (one line each, ``FILE:LINE: path: message``).
"""

from __future__ import annotations

import argparse
from typing import Any

from attnscope.cli import common
from attnscope.errors import InputError

FAILED = 1  # the exit status when a critical rule fails (errors keep 2)


def add(commands: argparse._SubParsersAction) -> None:
    rules = commands.add_parser(
        "rules",
        help="check rules about what the model attends to (exit 1 when a critical rule fails)",
        description="Rules say what should (not) be attended to: from which tokens to which, at which layers and "
        "heads, which measure, compared with which threshold (README: Rules). check runs them, validate explains "
        "a rule file's problems with their lines, examples lists the rule files shipped with attnscope.",
    )
    actions = rules.add_subparsers(dest="action", metavar="ACTION", required=True)
    check = actions.add_parser(
        "check",
        help="run the model over TEXT and check every rule",
        description="Capture TEXT (or generate after it with --generate N: step rules are checked at every "
        "step) and check each rule. Exit status: 0 no critical rule failed, 1 one did, 2 an error.",
    )
    check.add_argument("--rules", required=True, metavar="FILE", help="a rule file (YAML or JSON), or example:NAME")
    common.add_text(check)
    check.add_argument("--generate", type=int, default=None, metavar="N", help="generate up to N tokens (greedy) first")
    check.add_argument("--chat", action="store_true", help="TEXT is the user message of the model's chat template")
    check.add_argument("--system", default=None, metavar="TEXT", help="with --chat: a system message")
    check.add_argument(
        "--part", action="append", default=[], metavar="NAME=SNIPPET", help="a named part for part: NAME (repeat)"
    )
    check.add_argument(
        "--strict", action="store_true", help="a critical rule that could not be evaluated fails too (exit 1)"
    )
    common.add_model_options(check, stash=True)
    common.add_output_options(check)
    check.set_defaults(run=run_check)
    validate = actions.add_parser(
        "validate", help="check a rule file and explain each problem with its line (exit 1 when it has any)"
    )
    validate.add_argument("file", metavar="FILE")
    validate.add_argument("--json", action="store_true", help="print one JSON object")
    validate.set_defaults(run=run_validate)
    examples = actions.add_parser("examples", help="list the example rule files, or print one")
    examples.add_argument("name", nargs="?", metavar="NAME", help="print this example (basic, medical-en, ...)")
    examples.set_defaults(run=run_examples)


def read_rules(value: str) -> Any:
    """The rule set of ``--rules``: a file, or ``example:NAME`` (a shipped example)."""
    from attnscope.analysis.rule_file import load_example, load_rules

    if value.startswith("example:"):
        return load_example(value.removeprefix("example:"))
    return load_rules(value)


def rules_inputs(args: argparse.Namespace) -> tuple[Any, str, list[dict[str, str]] | None]:
    """The rule set, the text and the chat messages of ``rules check`` and ``audit`` (``--rules``,
    TEXT, ``--chat``/``--system``, ``--generate``), each refused in one line before a model loads."""
    from attnscope.methods.rules import method_problems

    rule_set = read_rules(args.rules)
    problems = method_problems(rule_set)
    if problems:
        raise InputError(problems[0].describe(args.rules))
    text = common.read_text(args.text, args.text_file)
    if args.system is not None and not args.chat:
        raise InputError("--system is for --chat")
    if args.generate is not None:
        from attnscope.capture.decoding import check_settings

        check_settings(args.generate, False, None, None, None, None, 1, None, names={"max_new_tokens": "--generate"})
    messages = None
    if args.chat:
        system = [{"role": "system", "content": args.system}] if args.system is not None else []
        messages = [*system, {"role": "user", "content": text}]
    return rule_set, text, messages


def run_check(args: argparse.Namespace) -> int:
    rule_set, text, messages = rules_inputs(args)
    model = common.load(args)
    from attnscope.capture import capture
    from attnscope.capture.generation import generate

    def job(bar: Any) -> Any:
        if args.generate is not None:
            return generate(
                model,
                None if args.chat else text,
                messages=messages,
                max_new_tokens=args.generate,
                stash=args.stash,
                stash_budget=args.stash_budget,
                progress=bar,
            )
        return capture(model, None if args.chat else text, messages=messages, **common.capture_options(args))

    common.say(args)("generating …" if args.generate is not None else "capturing …")
    trace = common.run_job(args, job)
    from attnscope.cli.heads import named_parts
    from attnscope.governance.rules import check_rules
    from attnscope.render.rules import rules_json, rules_text

    parts = named_parts(trace.text, args.part) if args.part else None
    common.say(args)(f"checking {len(rule_set.rules)} rules …")
    report = check_rules(model, trace, rule_set, parts=parts)
    body = rules_json(report)
    common.output(args, body, rules_text)
    summary = body["summary"]
    failed = summary["critical_failed"] + (summary["critical_not_evaluated"] if args.strict else 0)
    return FAILED if failed else 0


def run_validate(args: argparse.Namespace) -> int:
    from attnscope.analysis.rule_file import check_rules_file
    from attnscope.methods.rules import method_problems

    rule_set, problems = check_rules_file(args.file)
    if rule_set is not None:
        problems = method_problems(rule_set)
    if args.json:
        common.emit(
            {
                "result": "rules-validation",
                "file": args.file,
                "valid": not problems,
                "rules": [] if rule_set is None or problems else [rule.to_json() for rule in rule_set.rules],
                "problems": [problem.to_json() for problem in problems],
            }
        )
    elif problems:
        print("\n".join(problem.describe(args.file) for problem in problems))
    else:
        assert rule_set is not None
        print(f"{args.file}: valid: {len(rule_set.rules)} rules ({', '.join(r.name for r in rule_set.rules)})")
    return FAILED if problems else 0


def run_examples(args: argparse.Namespace) -> int:
    from attnscope.analysis.rule_file import example_names, example_text, load_example

    if args.name:
        print(example_text(args.name), end="")
        return 0
    for name in example_names():
        rule_set = load_example(name)
        print(f"example:{name:<12} {len(rule_set.rules)} rules  {rule_set.description}")
    print("\nattnscope rules examples NAME prints one; --rules example:NAME checks with it")
    return 0
