"""``attnscope keys generate`` (an Ed25519 signing key pair) and ``attnscope verify`` (a signed report)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from attnscope.errors import InputError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

PASSPHRASE_ENV = "ATTNSCOPE_KEY_PASSPHRASE"
EXIT_VERIFIED, EXIT_FAILED, EXIT_REFUSED = 0, 1, 2

VERIFY_CODES = """exit status:
  0  the signature and every file's SHA-256 check out
  1  verification failed: the signature, or a file (missing or altered), named on stderr
  2  refused: the envelope or key is missing or unusable (not JSON, not a DSSE envelope, not an Ed25519 key)"""


def add(commands: argparse._SubParsersAction) -> None:
    keys = commands.add_parser(
        "keys",
        help="generate the Ed25519 key pair that signs reports and run exports",
        description="Manage the key pair that 'attnscope report --sign' signs with.",
    )
    actions = keys.add_subparsers(dest="keys_action", metavar="ACTION")
    generate = actions.add_parser(
        "generate",
        help="write a new key pair",
        description="Write attnscope-signing.key (Ed25519 private key, PKCS#8 PEM, file mode 0600, encrypted "
        "when a passphrase is given) and attnscope-signing.pub (SubjectPublicKeyInfo PEM) into DIR, and print "
        "the key id (SHA-256 of the public key's DER). Existing key files are never overwritten. "
        f"The passphrase comes from --passphrase-file or the {PASSPHRASE_ENV} environment variable, "
        "never from the command line; without one the private key is not encrypted.",
    )
    generate.add_argument(
        "--out", type=Path, default=None, metavar="DIR", help="folder for the two files (default $ATTNSCOPE_HOME/keys)"
    )
    add_passphrase_option(generate)
    generate.set_defaults(run=run_generate)
    keys.set_defaults(run=lambda _: keys.print_help() or 0)

    verify = commands.add_parser(
        "verify",
        help="check a signed report's signature and the SHA-256 of every file it covers",
        description="Check ENVELOPE (R.intoto.json, a DSSE envelope around an in-toto Statement v1): its Ed25519\n"
        "signature, then every subject file beside it (its SHA-256 against the signed statement).",
        epilog=VERIFY_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    verify.add_argument("envelope", type=Path, metavar="ENVELOPE", help="the signed envelope, e.g. R.intoto.json")
    verify.add_argument(
        "--key",
        type=Path,
        default=None,
        metavar="PUB.pem",
        help="the signer's public key (default $ATTNSCOPE_HOME/keys/attnscope-signing.pub when its key id signed)",
    )
    verify.set_defaults(run=run_verify)


def add_signing_options(command: argparse.ArgumentParser, sign_help: str) -> None:
    """``--sign``, ``--key`` and ``--passphrase-file`` (read with :func:`signing_key_of`)."""
    signing = command.add_argument_group("signing")
    signing.add_argument("--sign", action="store_true", help=sign_help)
    signing.add_argument(
        "--key",
        type=Path,
        default=None,
        metavar="PRIV.pem",
        help="with --sign: the private key (default $ATTNSCOPE_HOME/keys/attnscope-signing.key)",
    )
    add_passphrase_option(signing)


def signing_key_of(args: argparse.Namespace) -> Ed25519PrivateKey | None:
    """The private key ``--sign`` signs with, loaded (and its passphrase checked) before any slow work."""
    if not args.sign:
        if args.key is not None or args.passphrase_file is not None:
            raise InputError("--key and --passphrase-file go with --sign")
        return None
    from attnscope.governance.signing import PRIVATE_KEY_NAME, default_key_folder, load_private_key

    path = args.key
    if path is None:
        path = default_key_folder(create=False) / PRIVATE_KEY_NAME
        if not path.exists():
            raise InputError(f"--sign: no signing key at {path}: run 'attnscope keys generate' first, or pass --key")
    return load_private_key(path, read_passphrase(args))


def add_passphrase_option(command: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    command.add_argument(
        "--passphrase-file",
        type=Path,
        default=None,
        metavar="FILE",
        help=f"read the private key's passphrase from FILE (one final line break dropped; default ${PASSPHRASE_ENV})",
    )


def read_passphrase(args: argparse.Namespace) -> bytes | None:
    """The passphrase from ``--passphrase-file``, else ``$ATTNSCOPE_KEY_PASSPHRASE``, else None."""
    path: Path | None = args.passphrase_file
    if path is not None:
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise InputError(f"--passphrase-file: {path} does not exist") from None
        except OSError as error:
            raise InputError(f"--passphrase-file: cannot read {path}: {error.strerror or error}") from None
        data = data[:-2] if data.endswith(b"\r\n") else data[:-1] if data.endswith(b"\n") else data
        if not data:
            raise InputError(f"--passphrase-file: {path} is empty")
        return data
    from attnscope.governance.keys import env_passphrase

    return env_passphrase()


def run_generate(args: argparse.Namespace) -> int:
    from attnscope.governance.signing import generate_keys, key_id, load_public_key

    passphrase = read_passphrase(args)
    private_path, public_path = generate_keys(args.out, passphrase)
    protection = "encrypted with the passphrase" if passphrase else "not encrypted: no passphrase given"
    print(f"private key: {private_path} (mode 0600, {protection}; keep it secret)")
    print(f"public key:  {public_path} (give it to whoever verifies your reports)")
    print(f"key id:      {key_id(load_public_key(public_path))}")
    return 0


def run_verify(args: argparse.Namespace) -> int:
    from attnscope.governance.signing import VerificationError, verify_envelope

    try:
        result = verify_envelope(args.envelope, args.key)
    except VerificationError as error:
        for failure in error.failures:
            print(f"verification failed: {failure}", file=sys.stderr)
        return EXIT_FAILED
    count = len(result.subjects)
    names = ", ".join(subject.name for subject in result.subjects)
    print(f"verified: signature by {result.keyid}, {count} file{'s' if count != 1 else ''} ({names})")
    return EXIT_VERIFIED
