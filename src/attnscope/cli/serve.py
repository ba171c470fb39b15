"""``attnscope serve``: the web app (and the JSON API, and OpenAI-compatible endpoints) on 127.0.0.1."""

from __future__ import annotations

import argparse
import os
import socket
import sys

from attnscope.cli import common
from attnscope.cli.common import add_pii_option
from attnscope.errors import InputError


def add(commands: argparse._SubParsersAction) -> None:
    serve = commands.add_parser(
        "serve",
        help="start the web app",
        description="Load a model and serve the interactive explorer on http://HOST:PORT (127.0.0.1 by default).",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--open", action="store_true", help="open the page in a browser")
    serve.add_argument(
        "--api-key-env",
        metavar="VARIABLE",
        default=None,
        help="require 'Authorization: Bearer KEY' on /v1 endpoints, KEY read from this environment variable",
    )
    serve.add_argument("--quiet", "-q", action="store_true", help="no loading lines on stderr")
    serve.add_argument(
        "--no-store",
        action="store_true",
        help="keep no runs (by default every analysis, attribution and generation answered is stored in the runs "
        "store of the data folder, ATTNSCOPE_HOME: attnscope runs list)",
    )
    serve.add_argument(
        "--atlas",
        action="append",
        default=[],
        metavar="FOLDER",
        help="a corpus atlas folder (attnscope batch --out) to open in the page's Corpus view, under its folder name "
        "(repeatable; re-read when it changes)",
    )
    add_pii_option(serve)
    common.add_model_options(serve, backend=False)
    serve.set_defaults(run=run)


def check_address(host: str, port: int) -> None:
    """Refuse an address this process cannot listen on (unknown host, port taken) before a model loads."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (OSError, UnicodeError) as error:
        raise InputError(f"--host {host!r}: cannot resolve it ({getattr(error, 'strerror', None) or error})") from None
    family, kind, proto, _, address = infos[0]
    try:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
            probe.bind(address)
    except OSError as error:
        raise InputError(f"cannot listen on {host} port {port}: {error.strerror or error}") from None


def allowed_hosts(bind: str) -> list[str] | None:
    """The ``Host`` names a server bound to ``bind`` answers: on a loopback address only the loopback
    names (a page elsewhere cannot reach it through a re-pointed DNS name); elsewhere any (None)."""
    from attnscope.server.guards import LOOPBACK_NAMES

    if bind.strip("[]").lower() not in LOOPBACK_NAMES:
        return None
    return [*LOOPBACK_NAMES, bind]


def run(args: argparse.Namespace) -> int:
    if not 0 < args.port < 65536:
        raise InputError(f"--port must be between 1 and 65535; got {args.port}")
    api_key = None
    if args.api_key_env:
        api_key = os.environ.get(args.api_key_env)
        if not api_key:
            raise InputError(f"--api-key-env {args.api_key_env}: that environment variable is not set")
    spec = common.model_spec(args.model)
    device = common.check_device(args.device)
    check_address(args.host, args.port)
    if args.atlas:  # a bad atlas stops the server before a model loads
        from attnscope.batch.shelf import AtlasShelf

        AtlasShelf(args.atlas)
    common.quiet_libraries()
    import uvicorn

    from attnscope.models import load_model
    from attnscope.server.app import create_app
    from attnscope.server.host import ModelHost

    line = common.say(args)

    def loader(name: str) -> object:
        line(f"loading {name} …")
        return load_model(
            name, device=device, dtype=args.dtype, trust_remote_code=args.trust_remote_code, progress=line
        )

    host = ModelHost(loader=loader)  # type: ignore[arg-type]
    if not args.no_store:  # opened before the model loads: a store that cannot open stops the server at once
        from attnscope.store.runs import RunsStore

        host.store = RunsStore()
        host.store.sweep()  # files left by a process killed while storing
    host.pii_policy = args.pii_policy  # also what a report is masked by
    host.load(spec)
    allowed = allowed_hosts(args.host)
    if allowed is None:
        print(f"warning: binding {args.host}: anyone who can reach this address can use the app", file=sys.stderr)
    url = f"http://{'[' + args.host + ']' if ':' in args.host else args.host}:{args.port}/"
    kept = f"; runs kept in {host.store.folder}" if host.store is not None else "; no runs kept"
    print(f"attnscope is serving {spec} at {url} (Ctrl+C stops it){kept}", flush=True)
    if args.open:
        import webbrowser

        webbrowser.open(url)
    app = create_app(host, api_key=api_key, allowed_hosts=allowed, atlases=args.atlas)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0
