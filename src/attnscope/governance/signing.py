"""Signed, verifiable results: in-toto Statement v1 attestations in a DSSE envelope, signed with Ed25519
(the key files: :mod:`attnscope.governance.keys`, re-exported here).

An envelope (``R.intoto.json``) is the JSON object ::

    {"payloadType": "application/vnd.in-toto+json",
     "payload": base64(statement),
     "signatures": [{"keyid": sha256-hex(public key DER), "sig": base64(Ed25519(PAE(payloadType, payload)))}]}

whose statement is ::

    {"_type": "https://in-toto.io/Statement/v1",
     "subject": [{"name": "R.html", "digest": {"sha256": "<hex>"}}, ...],
     "predicateType": "https://attnscope.dev/provenance/v1",
     "predicate": <the provenance record>}

Every subject is a file beside the envelope. The formats are the standard ones (DSSE v1, in-toto
Statement v1), so other tools check them too (``securesystemslib``'s DSSE ``Envelope`` does).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from attnscope.errors import AttnscopeError, InputError
from attnscope.governance.keys import (
    PASSPHRASE_HINT,
    PRIVATE_KEY_NAME,
    PUBLIC_KEY_NAME,
    default_key_folder,
    generate_keys,
    key_id,
    load_private_key,
    load_public_key,
)
from attnscope.home import write_atomic

__all__ = [
    "PASSPHRASE_HINT",
    "PAYLOAD_TYPE",
    "PREDICATE_TYPE",
    "PRIVATE_KEY_NAME",
    "PUBLIC_KEY_NAME",
    "STATEMENT_TYPE",
    "Subject",
    "VerificationError",
    "VerifyResult",
    "default_key_folder",
    "file_sha256",
    "generate_keys",
    "key_id",
    "load_private_key",
    "load_public_key",
    "pae",
    "sign_files",
    "verify_envelope",
]

PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://attnscope.dev/provenance/v1"


class VerificationError(AttnscopeError):
    """A signed result does not check out: its signature, or a file it names (missing or altered).

    ``failures`` lists each one (``"R.html: SHA-256 differs ..."``, ``"signature: ..."``)."""

    code = "verification_failed"
    status = 422

    def __init__(self, failures: list[str]) -> None:
        super().__init__("; ".join(failures))
        self.failures = list(failures)


@dataclass(frozen=True)
class Subject:
    """A file the statement covers: its name (beside the envelope) and SHA-256 (hex)."""

    name: str
    sha256: str


@dataclass(frozen=True)
class VerifyResult:
    """What :func:`verify_envelope` checked: the signature's key and every subject file."""

    envelope: Path
    keyid: str
    public_key: Path
    subjects: tuple[Subject, ...]
    predicate_type: str
    predicate: dict[str, Any]


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding: ``"DSSEv1" SP LEN(type) SP type SP LEN(body) SP body``,
    lengths in bytes as ASCII decimal (the bytes an envelope's signature covers)."""
    kind = payload_type.encode("utf-8")
    return b"DSSEv1 %d %b %d %b" % (len(kind), kind, len(payload), payload)


def file_sha256(path: Path) -> str:
    """SHA-256 (hex) of the file's bytes, read in chunks."""
    with Path(path).open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def sign_files(files: list[Path], predicate: dict[str, Any], private_key: Ed25519PrivateKey, out: Path) -> Path:
    """Write ``out`` (e.g. ``R.intoto.json``): a DSSE envelope, signed with ``private_key``, around an
    in-toto Statement v1 with one subject per file (each beside ``out``) and ``predicate`` as its
    predicate. Written atomically (temporary file, then rename). Returns ``out``."""
    out = Path(out)
    if not files:
        raise InputError("nothing to sign: name at least one file")
    subjects, names = [], set()
    for path in map(Path, files):
        if not path.is_file():
            raise InputError(f"cannot sign {path}: not a file")
        if path.resolve().parent != out.resolve().parent:
            raise InputError(f"cannot sign {path}: a signed file must be beside the envelope {out}")
        if path.name in names or path.name == out.name:
            raise InputError(f"cannot sign {path.name} twice")
        names.add(path.name)
        subjects.append({"name": path.name, "digest": {"sha256": file_sha256(path)}})
    statement = {"_type": STATEMENT_TYPE, "subject": subjects, "predicateType": PREDICATE_TYPE, "predicate": predicate}
    try:
        payload = json.dumps(statement, ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as error:
        raise InputError(f"the predicate is not plain JSON: {error}") from None
    body = payload.encode("utf-8")
    signature = private_key.sign(pae(PAYLOAD_TYPE, body))
    envelope = {
        "payloadType": PAYLOAD_TYPE,
        "payload": base64.b64encode(body).decode("ascii"),
        "signatures": [{"keyid": key_id(private_key.public_key()), "sig": base64.b64encode(signature).decode("ascii")}],
    }
    write_atomic(out, (json.dumps(envelope, indent=1) + "\n").encode("utf-8"))
    return out


def _envelope(path: Path) -> tuple[bytes, list[dict[str, Any]]]:
    """The payload (decoded) and the signatures of the DSSE envelope in ``path``; :class:`InputError`
    naming what is wrong when it is not one, :class:`VerificationError` when its payload is not base64."""
    if not path.exists():
        raise InputError(f"envelope {path} does not exist")
    if path.is_dir():
        raise InputError(f"envelope {path} is a folder")
    try:
        envelope = json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        where = f" (line {error.lineno}, column {error.colno})" if isinstance(error, json.JSONDecodeError) else ""
        raise InputError(f"{path} is not JSON{where}: not a signed-report envelope") from None
    except OSError as error:
        raise InputError(f"cannot read {path}: {error.strerror or error}") from None
    if not isinstance(envelope, dict):
        raise InputError(f"{path} is not a DSSE envelope: a JSON object is expected")
    missing = [field for field in ("payloadType", "payload", "signatures") if field not in envelope]
    if missing:
        raise InputError(f"{path} is not a DSSE envelope: no {', '.join(missing)}")
    if envelope["payloadType"] != PAYLOAD_TYPE:
        found = repr(envelope["payloadType"])[:80]
        raise InputError(f"{path}: payloadType is {found}, expected {PAYLOAD_TYPE!r}")
    if not isinstance(envelope["payload"], str):
        raise InputError(f"{path}: payload is not a base64 string")
    signatures = envelope["signatures"]
    if not isinstance(signatures, list) or not signatures:
        raise InputError(f"{path}: signatures is not a non-empty list")
    for index, entry in enumerate(signatures):
        if not isinstance(entry, dict) or not isinstance(entry.get("sig"), str):
            raise InputError(f"{path}: signatures[{index}] has no 'sig' string")
        if entry.get("keyid") is not None and not isinstance(entry["keyid"], str):
            raise InputError(f"{path}: signatures[{index}].keyid is not a string")
    return _b64(envelope["payload"], "payload"), signatures


def _b64(text: str, what: str) -> bytes:
    """Standard or URL-safe base64 (both allowed by DSSE), padded or not, in its canonical form only
    (a changed character never decodes to the same bytes)."""
    standard = text.strip().replace("-", "+").replace("_", "/").rstrip("=")
    try:
        data = base64.b64decode((standard + "=" * (-len(standard) % 4)).encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error, ValueError):
        data = None
    if data is None or base64.b64encode(data).decode("ascii").rstrip("=") != standard:
        raise VerificationError([f"{what}: not valid base64 (altered or damaged)"])
    return data


def _verifies(public_key: Ed25519PublicKey, signature: bytes, message: bytes) -> bool:
    try:
        public_key.verify(signature, message)
    except InvalidSignature:
        return False
    return True


def _resolve_key(signatures: list[dict[str, Any]], public_key_path: Path | None) -> Path:
    """The public key to check with: the one given, else the default one when a signature names its id."""
    if public_key_path is not None:
        return Path(public_key_path)
    signers = ", ".join(sorted({str(entry.get("keyid") or "(no keyid)") for entry in signatures}))
    default = default_key_folder(create=False) / PUBLIC_KEY_NAME
    if not default.is_file():
        raise InputError(f"signed by keyid {signers}; there is no default public key ({default}): pass --key PUB.pem")
    if key_id(load_public_key(default)) not in {entry.get("keyid") for entry in signatures}:
        raise InputError(f"signed by keyid {signers}, not by the default key {default}: pass --key PUB.pem")
    return default


def verify_envelope(envelope_path: Path, public_key_path: Path | None = None) -> VerifyResult:
    """Check the envelope's signature with the public key (``public_key_path``, or when None the default
    ``attnscope-signing.pub`` if a signature names its keyid), then every subject: the file of that name
    beside the envelope must exist and have the statement's SHA-256.

    Raises :class:`InputError` when the envelope or key cannot be used at all (missing, not JSON, not a
    DSSE envelope, not a key) and :class:`VerificationError` naming the signature or each file that fails."""
    envelope_path = Path(envelope_path)
    body, signatures = _envelope(envelope_path)
    key_path = _resolve_key(signatures, public_key_path)
    public_key = load_public_key(key_path)
    keyid = key_id(public_key)
    message = pae(PAYLOAD_TYPE, body)
    # a keyid is an unauthenticated hint (DSSE): signatures without one are tried too, other keys' are not
    candidates = [entry for entry in signatures if entry.get("keyid") in (None, "", keyid)]
    if not candidates:
        named = ", ".join(sorted({str(entry["keyid"]) for entry in signatures}))
        raise VerificationError([f"signature: made by keyid {named}, not by the key in {key_path} (keyid {keyid})"])
    if not any(_verifies(public_key, _b64(entry["sig"], "signature"), message) for entry in candidates):
        raise VerificationError(
            [f"signature: does not verify with {key_path} (keyid {keyid}): the payload or the signature was altered"]
        )
    subjects, predicate_type, predicate = _statement(body, envelope_path)
    failures = []
    for subject in subjects:
        path = envelope_path.parent / subject.name
        if not path.is_file():
            failures.append(f"{subject.name}: missing (expected beside {envelope_path.name})")
        elif (actual := file_sha256(path)) != subject.sha256:
            failures.append(f"{subject.name}: SHA-256 is {actual}, the signed statement says {subject.sha256}")
    if failures:
        raise VerificationError(failures)
    return VerifyResult(envelope_path, keyid, key_path, subjects, predicate_type, predicate)


def _statement(body: bytes, path: Path) -> tuple[tuple[Subject, ...], str, dict[str, Any]]:
    """The subjects, predicate type and predicate of a signed in-toto Statement v1."""
    try:
        statement = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise InputError(f"{path}: the signed payload is not JSON") from None
    if not isinstance(statement, dict) or statement.get("_type") != STATEMENT_TYPE:
        raise InputError(f"{path}: the signed payload is not an in-toto Statement v1 ({STATEMENT_TYPE})")
    entries = statement.get("subject")
    if not isinstance(entries, list) or not entries:
        raise InputError(f"{path}: the signed statement names no subject")
    subjects = []
    for entry in entries:
        name = entry.get("name") if isinstance(entry, dict) else None
        digest = entry.get("digest") if isinstance(entry, dict) else None
        sha256 = digest.get("sha256") if isinstance(digest, dict) else None
        if not isinstance(name, str) or name in ("", ".", "..") or Path(name).name != name or "\\" in name:
            raise InputError(f"{path}: subject {name!r} is not a file name beside the envelope")
        if not isinstance(sha256, str) or len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256.lower()):
            raise InputError(f"{path}: subject {name} has no SHA-256 digest")
        subjects.append(Subject(name, sha256.lower()))
    predicate = statement.get("predicate")
    return tuple(subjects), str(statement.get("predicateType", "")), predicate if isinstance(predicate, dict) else {}
