"""The parser (one sub-command per command-group module, dispatched with ``set_defaults(run=...)``) and ``main``."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from attnscope.errors import AttnscopeError
from attnscope.version import __version__


class Parser(argparse.ArgumentParser):
    """argparse, but a refused command line is one line ``error: ...`` (and ``--help`` says the rest)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {self.prog}: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    from attnscope.cli import (
        analyze,
        atlas,
        audit,
        batch,
        bias,
        compare,
        counterfactual,
        doctor,
        export,
        generate,
        graph,
        heads,
        interop,
        keys,
        methods,
        models,
        provenance,
        report,
        rules,
        runs,
        serve,
        syntax,
    )

    parser = Parser(
        prog="attnscope",
        description="See what a transformer language model attends to and why it predicts what it predicts.",
    )
    parser.add_argument("--version", action="version", version=f"attnscope {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in (
        analyze,
        generate,
        models,
        serve,
        methods,
        heads,
        atlas,
        batch,
        graph,
        compare,
        counterfactual,
        syntax,
        rules,
        bias,
        report,
        export,
        interop,
        audit,
        runs,
        keys,
        provenance,
        doctor,
    ):
        module.add(commands)
    version = commands.add_parser("version", help="print the version")
    version.set_defaults(run=lambda _: print(f"attnscope {__version__}") or 0)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # transformers' one-time GGUF conversion draws a bare tqdm bar over the CLI's own status lines;
    # tqdm reads this when it is first imported, so it is set before anything imports it
    os.environ.setdefault("TQDM_DISABLE", "1")
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "run", None) is None:
        parser.print_help()
        return 0
    try:
        return int(args.run(args))
    except AttnscopeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into a reader that stopped early (| head): not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
