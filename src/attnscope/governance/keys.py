"""Ed25519 signing keys as files: generate a pair (the private key PKCS#8 PEM, mode 0600 from its
creation, optionally passphrase-encrypted; the public key SubjectPublicKeyInfo PEM), load them with
one-line errors, and name a public key by its id (SHA-256 of its DER encoding)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from attnscope.errors import InputError
from attnscope.home import home, private_folder, write_synced

PRIVATE_KEY_NAME = "attnscope-signing.key"
PUBLIC_KEY_NAME = "attnscope-signing.pub"
PASSPHRASE_HINT = "--passphrase-file FILE or the ATTNSCOPE_KEY_PASSPHRASE environment variable"
_MAX_KEY_BYTES = 64 * 1024  # a PEM Ed25519 key is a few hundred bytes; anything this large is not one


def default_key_folder(create: bool = True) -> Path:
    """``$ATTNSCOPE_HOME/keys`` (or the platform's user data folder's ``keys``)."""
    return home(create=create) / "keys"


def key_id(public_key: Ed25519PublicKey) -> str:
    """The key's id: SHA-256 (hex) of its SubjectPublicKeyInfo DER encoding."""
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


def generate_keys(folder: Path | None = None, passphrase: bytes | None = None) -> tuple[Path, Path]:
    """Write a new Ed25519 key pair into ``folder`` (default :func:`default_key_folder`):
    ``attnscope-signing.key`` (PKCS#8 PEM, encrypted when a passphrase is given, mode 0600 from its
    creation) and ``attnscope-signing.pub`` (SubjectPublicKeyInfo PEM). Existing key files are never
    overwritten. Returns (private key path, public key path)."""
    if passphrase is not None and not passphrase:
        raise InputError("the passphrase is empty: give a non-empty one, or none for an unencrypted key")
    folder = default_key_folder() if folder is None else Path(folder)
    private_path, public_path = folder / PRIVATE_KEY_NAME, folder / PUBLIC_KEY_NAME
    for path in (private_path, public_path):
        if path.exists() or path.is_symlink():
            raise InputError(f"{path} already exists: keys are never overwritten (move it away or choose --out)")
    private_folder(folder, "the key folder")
    private_key = Ed25519PrivateKey.generate()
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase) if passphrase else serialization.NoEncryption()
    )
    private_pem = private_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    public_pem = private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    _create(private_path, private_pem, 0o600)
    try:
        _create(public_path, public_pem, 0o644)
    except InputError:
        private_path.unlink(missing_ok=True)  # no half a key pair
        raise
    return private_path, public_path


def _create(path: Path, content: bytes, mode: int) -> None:
    """Create ``path`` (refused if it exists) with ``mode`` from the start, write and flush it to disk."""
    try:
        descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, mode)
    except FileExistsError:
        raise InputError(f"{path} already exists: keys are never overwritten") from None
    except OSError as error:
        raise InputError(f"cannot create {path}: {error.strerror or error}") from None
    write_synced(descriptor, path, content, str(path))


def _read_key_file(path: Path, what: str) -> bytes:
    path = Path(path)
    if not path.exists():
        raise InputError(f"{what} {path} does not exist")
    if path.is_dir():
        raise InputError(f"{what} {path} is a folder, not a key file")
    try:
        with path.open("rb") as handle:
            data = handle.read(_MAX_KEY_BYTES + 1)
    except OSError as error:
        raise InputError(f"cannot read {what} {path}: {error.strerror or error}") from None
    if len(data) > _MAX_KEY_BYTES:
        raise InputError(f"{what} {path} is not a PEM key (it is larger than {_MAX_KEY_BYTES // 1024} KiB)")
    return data


def load_private_key(path: Path, passphrase: bytes | None = None) -> Ed25519PrivateKey:
    """The Ed25519 private key in the PEM file ``path``; one-line :class:`InputError` for a missing file,
    a missing or wrong passphrase, a file that is not a PEM private key, or a key of another type.
    A passphrase given for an unencrypted key is ignored."""
    data = _read_key_file(path, "private key")
    if b"-----BEGIN PUBLIC KEY-----" in data:
        raise InputError(f"{path} is a public key: signing needs the private key (attnscope-signing.key)")
    encrypted = b"-----BEGIN ENCRYPTED PRIVATE KEY-----" in data
    if encrypted and not passphrase:
        raise InputError(f"the private key {path} is encrypted: give its passphrase ({PASSPHRASE_HINT})")
    try:
        key = serialization.load_pem_private_key(data, password=passphrase if encrypted else None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as error:
        if encrypted:
            raise InputError(f"wrong passphrase for the private key {path} (or the file is damaged)") from None
        raise InputError(f"{path} is not a PEM private key ({_reason(error)})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise InputError(f"{path} is {_kind(key)} key; attnscope signs with Ed25519 keys (attnscope keys generate)")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    """The Ed25519 public key in the PEM file ``path`` (SubjectPublicKeyInfo); one-line :class:`InputError`
    for a missing file, a file that is not a PEM public key, or a key of another type."""
    data = _read_key_file(path, "public key")
    if b"PRIVATE KEY-----" in data:
        raise InputError(f"{path} is a private key: verify with the public key (attnscope-signing.pub)")
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError, UnsupportedAlgorithm) as error:
        raise InputError(f"{path} is not a PEM public key ({_reason(error)})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise InputError(f"{path} is {_kind(key)} key; attnscope verifies Ed25519 signatures")
    return key


def _kind(key: object) -> str:
    name = type(key).__name__.removeprefix("_")
    for suffix in ("PrivateKey", "PublicKey"):
        name = name.removesuffix(suffix)
    name = {"EllipticCurve": "an elliptic-curve (ECDSA)", "RSA": "an RSA", "DSA": "a DSA"}.get(name, f"a {name}")
    return name


def _reason(error: Exception) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text.split(". See ")[0][:160]


PASSPHRASE_ENV = "ATTNSCOPE_KEY_PASSPHRASE"


def env_passphrase() -> bytes | None:
    """The signing key's passphrase from ``$ATTNSCOPE_KEY_PASSPHRASE`` (None when unset; set but empty
    is refused: a key is never decrypted with an empty passphrase by mistake)."""
    value = os.environ.get(PASSPHRASE_ENV)
    if value is None:
        return None
    if not value:
        raise InputError(f"{PASSPHRASE_ENV} is set but empty: give a passphrase or unset it")
    return value.encode("utf-8")
