"""Signed reports: Ed25519 key files, DSSE envelopes around in-toto statements, and ``attnscope verify`` —
real keys and files, every file of a signed report tampered with in turn, and the envelope checked by
a DSSE verification written here (and by ``securesystemslib`` where it is installed)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from attnscope.errors import InputError
from attnscope.governance.signing import (
    PAYLOAD_TYPE,
    PREDICATE_TYPE,
    STATEMENT_TYPE,
    VerificationError,
    generate_keys,
    key_id,
    load_private_key,
    load_public_key,
    pae,
    sign_files,
    verify_envelope,
)

PREDICATE = {"model_spec": "tiny:gpt2", "text_sha256": "ab" * 32, "versions": {"attnscope": "0.1.0"}, "中文": "是"}


def flip(path: Path, position: int) -> None:
    """Change the byte at ``position`` (negative counts from the end) of the file."""
    data = bytearray(path.read_bytes())
    data[position] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    return generate_keys(tmp_path / "keys", None)


@pytest.fixture
def signed(tmp_path: Path, keys: tuple[Path, Path]) -> Path:
    """A signed report folder: R.html, R.json and R.intoto.json (signed with ``keys``)."""
    folder = tmp_path / "report"
    folder.mkdir()
    (folder / "R.html").write_text("<!doctype html><title>报告</title><p>attention</p>\n", encoding="utf-8")
    (folder / "R.json").write_text(json.dumps({"text": "我爱中国", "provenance": PREDICATE}), encoding="utf-8")
    return sign_files(
        [folder / "R.html", folder / "R.json"], PREDICATE, load_private_key(keys[0]), folder / "R.intoto.json"
    )


def envelope_of(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def rewrite(path: Path, envelope: dict) -> None:
    path.write_text(json.dumps(envelope), encoding="utf-8")


# ----------------------------------------------------------------------------------------------- keys


def test_generate_writes_a_0600_pkcs8_private_key_and_its_public_key(tmp_path):
    private_path, public_path = generate_keys(tmp_path / "k", None)
    assert (private_path.name, public_path.name) == ("attnscope-signing.key", "attnscope-signing.pub")
    assert stat.S_IMODE(private_path.stat().st_mode) == 0o600
    assert private_path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")  # PKCS#8, not encrypted
    private = serialization.load_pem_private_key(private_path.read_bytes(), password=None)
    public = serialization.load_pem_public_key(public_path.read_bytes())
    assert isinstance(private, Ed25519PrivateKey) and isinstance(public, Ed25519PublicKey)
    raw = serialization.Encoding.Raw, serialization.PublicFormat.Raw
    assert private.public_key().public_bytes(*raw) == public.public_bytes(*raw)
    assert public_path.read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----")  # SubjectPublicKeyInfo
    der = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert key_id(load_public_key(public_path)) == hashlib.sha256(der).hexdigest()


def test_a_passphrase_encrypts_the_key_and_a_wrong_one_is_refused(tmp_path):
    private_path, _ = generate_keys(tmp_path, b"correct horse")
    assert stat.S_IMODE(private_path.stat().st_mode) == 0o600
    assert private_path.read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert isinstance(
        serialization.load_pem_private_key(private_path.read_bytes(), b"correct horse"), Ed25519PrivateKey
    )
    assert isinstance(load_private_key(private_path, b"correct horse"), Ed25519PrivateKey)
    with pytest.raises(InputError, match="wrong passphrase"):
        load_private_key(private_path, b"wrong horse")
    with pytest.raises(InputError, match="encrypted: give its passphrase"):
        load_private_key(private_path, None)
    with pytest.raises(InputError, match="passphrase is empty"):
        generate_keys(tmp_path / "other", b"")


def test_existing_keys_are_never_overwritten(tmp_path):
    private_path, public_path = generate_keys(tmp_path, None)
    before = private_path.read_bytes(), public_path.read_bytes()
    with pytest.raises(InputError, match="already exists"):
        generate_keys(tmp_path, None)
    public_path.unlink()  # half a pair left: still refused, the private key untouched
    with pytest.raises(InputError, match="already exists"):
        generate_keys(tmp_path, None)
    assert private_path.read_bytes() == before[0]


def test_unusable_key_files_are_one_line_errors(tmp_path, keys):
    private_path, public_path = keys
    (tmp_path / "not-a-key.pem").write_text("hello\n")
    rsa = tmp_path / "rsa.pem"
    from cryptography.hazmat.primitives.asymmetric import rsa as rsa_keys

    rsa.write_bytes(
        rsa_keys.generate_private_key(public_exponent=65537, key_size=2048)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    cases = [
        (lambda: load_private_key(tmp_path / "missing.key"), "does not exist"),
        (lambda: load_public_key(tmp_path / "missing.pub"), "does not exist"),
        (lambda: load_private_key(tmp_path / "not-a-key.pem"), "is not a PEM private key"),
        (lambda: load_public_key(tmp_path / "not-a-key.pem"), "is not a PEM public key"),
        (lambda: load_public_key(rsa), "is an RSA key"),
        (lambda: load_private_key(public_path), "is a public key"),
        (lambda: load_public_key(private_path), "is a private key"),
        (lambda: load_public_key(tmp_path), "is a folder"),
    ]
    for call, message in cases:
        with pytest.raises(InputError, match=message) as raised:
            call()
        assert "\n" not in str(raised.value)


# ------------------------------------------------------------------------------------ envelopes


def test_pae_is_the_dsse_v1_encoding():
    assert pae("http://example.com/HelloWorld", b"hello world") == (
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"  # the DSSE specification's example
    )
    assert pae("t", b"") == b"DSSEv1 1 t 0 "
    assert pae("类型", "正文".encode()) == "DSSEv1 6 类型 6 正文".encode()  # lengths in bytes


def test_sign_then_verify_round_trip(signed, keys):
    envelope = envelope_of(signed)
    assert set(envelope) == {"payloadType", "payload", "signatures"}
    statement = json.loads(base64.b64decode(envelope["payload"]))
    assert statement["_type"] == STATEMENT_TYPE and statement["predicateType"] == PREDICATE_TYPE
    assert statement["predicate"] == PREDICATE
    assert [s["name"] for s in statement["subject"]] == ["R.html", "R.json"]
    result = verify_envelope(signed, keys[1])
    assert result.keyid == key_id(load_public_key(keys[1])) == envelope["signatures"][0]["keyid"]
    assert [(s.name, s.sha256) for s in result.subjects] == [
        (name, hashlib.sha256((signed.parent / name).read_bytes()).hexdigest()) for name in ("R.html", "R.json")
    ]
    assert result.predicate == PREDICATE
    assert not list(signed.parent.glob(".*partial"))  # the atomic write left no temporary behind


def test_envelope_verifies_with_an_independent_dsse_check(signed, keys):
    """DSSE v1 rebuilt here by hand: decode, PAE, Ed25519 verify, subjects' SHA-256, keyid."""
    envelope = envelope_of(signed)
    assert envelope["payloadType"] == "application/vnd.in-toto+json"
    body = base64.b64decode(envelope["payload"], validate=True)
    payload_type = envelope["payloadType"].encode()
    message = b"DSSEv1 " + str(len(payload_type)).encode() + b" " + payload_type
    message += b" " + str(len(body)).encode() + b" " + body
    public = serialization.load_pem_public_key(keys[1].read_bytes())
    assert isinstance(public, Ed25519PublicKey)
    (signature,) = envelope["signatures"]
    public.verify(base64.b64decode(signature["sig"], validate=True), message)  # raises if it does not verify
    der = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert signature["keyid"] == hashlib.sha256(der).hexdigest()
    statement = json.loads(body.decode("utf-8"))
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    for subject in statement["subject"]:
        assert subject["digest"]["sha256"] == hashlib.sha256((signed.parent / subject["name"]).read_bytes()).hexdigest()


def test_envelope_verifies_with_securesystemslib(signed, keys):
    dsse = pytest.importorskip("securesystemslib.dsse", reason="securesystemslib is not installed (optional check)")
    signer = pytest.importorskip("securesystemslib.signer")
    envelope = dsse.Envelope.from_dict(envelope_of(signed))
    public = serialization.load_pem_public_key(keys[1].read_bytes())
    key = signer.SSlibKey.from_crypto(public, keyid=key_id(public))
    assert set(envelope.verify([key], 1)) == {key_id(public)}
    tampered = envelope_of(signed)
    body = bytearray(base64.b64decode(tampered["payload"]))
    body[len(body) // 2] ^= 1
    tampered["payload"] = base64.b64encode(bytes(body)).decode()
    from securesystemslib.exceptions import VerificationError as SslibVerificationError

    with pytest.raises(SslibVerificationError):
        dsse.Envelope.from_dict(tampered).verify([key], 1)


@pytest.mark.parametrize("name", ["R.html", "R.json"])
def test_one_changed_byte_in_a_signed_file_fails_naming_it(signed, keys, name):
    path = signed.parent / name
    original = path.read_bytes()
    for position in (0, len(original) // 2, -1):
        flip(path, position)
        with pytest.raises(VerificationError, match=rf"^{name}: SHA-256 is") as raised:
            verify_envelope(signed, keys[1])
        assert raised.value.failures == [str(raised.value)]  # only that file
        path.write_bytes(original)
    verify_envelope(signed, keys[1])


def test_every_changed_byte_of_the_payload_and_the_signature_fails_naming_the_signature(signed, keys):
    envelope = envelope_of(signed)
    for field, encoded in (("payload", envelope["payload"]), ("sig", envelope["signatures"][0]["sig"])):
        raw = base64.b64decode(encoded)
        for position in range(len(raw)):
            changed = bytearray(raw)
            changed[position] ^= 1 << (position % 8)
            tampered = json.loads(json.dumps(envelope))
            target = tampered if field == "payload" else tampered["signatures"][0]
            target[field] = base64.b64encode(bytes(changed)).decode()
            rewrite(signed, tampered)
            with pytest.raises(VerificationError, match=r"^signature: does not verify"):
                verify_envelope(signed, keys[1])
    rewrite(signed, envelope)
    verify_envelope(signed, keys[1])


def test_a_changed_character_of_the_base64_text_fails(signed, keys):
    envelope = envelope_of(signed)
    for field in ("payload", "sig"):
        holder = envelope if field == "payload" else envelope["signatures"][0]
        text = holder[field].rstrip("=")
        for position in (0, len(text) // 2, len(text) - 1):  # the last character too (its unused bits)
            tampered = json.loads(json.dumps(envelope))
            target = tampered if field == "payload" else tampered["signatures"][0]
            swapped = "B" if text[position] != "B" else "C"
            target[field] = text[:position] + swapped + holder[field][position + 1 :]
            rewrite(signed, tampered)
            with pytest.raises(VerificationError, match=r"^(signature|payload): "):
                verify_envelope(signed, keys[1])


def test_a_statement_rewritten_to_match_a_changed_file_fails_the_signature(signed, keys):
    """The attack a digest alone cannot stop: change R.html and put its new SHA-256 in the statement."""
    html = signed.parent / "R.html"
    html.write_text("<p>a different conclusion</p>", encoding="utf-8")
    envelope = envelope_of(signed)
    statement = json.loads(base64.b64decode(envelope["payload"]))
    statement["subject"][0]["digest"]["sha256"] = hashlib.sha256(html.read_bytes()).hexdigest()
    envelope["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    rewrite(signed, envelope)
    with pytest.raises(VerificationError, match=r"^signature: "):
        verify_envelope(signed, keys[1])


def test_a_removed_file_fails_naming_it(signed, keys):
    (signed.parent / "R.json").unlink()
    with pytest.raises(VerificationError, match=r"^R.json: missing"):
        verify_envelope(signed, keys[1])


def test_another_keys_signature_fails_against_the_right_key(signed, keys, tmp_path):
    _, other_public = generate_keys(tmp_path / "other", None)
    with pytest.raises(VerificationError, match=r"^signature: made by keyid [0-9a-f]{64}, not by the key in"):
        verify_envelope(signed, other_public)
    envelope = envelope_of(signed)  # an impostor names the right keyid: the signature itself fails
    envelope["signatures"][0]["keyid"] = key_id(load_public_key(other_public))
    rewrite(signed, envelope)
    with pytest.raises(VerificationError, match=r"^signature: does not verify"):
        verify_envelope(signed, other_public)
    envelope["signatures"][0]["keyid"] = "0" * 64  # a changed keyid fails with the signer's key too
    rewrite(signed, envelope)
    with pytest.raises(VerificationError, match=r"^signature: made by keyid 0{64}"):
        verify_envelope(signed, keys[1])


def test_malformed_envelopes_are_refused_naming_what_is_wrong(signed, keys, tmp_path):
    good = envelope_of(signed)
    cases = {
        "not JSON": (b"{not json", "is not JSON"),
        "an array": (b"[]", "a JSON object is expected"),
        "no signatures": ({k: v for k, v in good.items() if k != "signatures"}, "no signatures"),
        "type": ({**good, "payloadType": "text/plain"}, "payloadType is 'text/plain'"),
        "empty signatures": ({**good, "signatures": []}, "signatures is not a non-empty list"),
        "no sig": ({**good, "signatures": [{"keyid": "x"}]}, r"signatures\[0\] has no 'sig'"),
        "payload base64": ({**good, "payload": "***"}, "payload: not valid base64"),
    }
    for label, (content, message) in cases.items():
        path = tmp_path / f"{label}.json"
        path.write_bytes(content if isinstance(content, bytes) else json.dumps(content).encode())
        with pytest.raises((InputError, VerificationError), match=message):
            verify_envelope(path, keys[1])
    with pytest.raises(InputError, match="does not exist"):
        verify_envelope(tmp_path / "missing.intoto.json", keys[1])


def test_a_signed_statement_naming_a_path_outside_the_folder_is_refused(tmp_path, keys):
    private = load_private_key(keys[0])
    statement = {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": "../secret", "digest": {"sha256": "0" * 64}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": {},
    }
    body = json.dumps(statement).encode()
    envelope = {
        "payloadType": PAYLOAD_TYPE,
        "payload": base64.b64encode(body).decode(),
        "signatures": [
            {
                "keyid": key_id(private.public_key()),
                "sig": base64.b64encode(private.sign(pae(PAYLOAD_TYPE, body))).decode(),
            }
        ],
    }
    path = tmp_path / "evil.intoto.json"
    rewrite(path, envelope)
    with pytest.raises(InputError, match="not a file name beside the envelope"):
        verify_envelope(path, keys[1])


def test_sign_files_refuses_files_that_are_not_beside_the_envelope(tmp_path, keys):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "R.html").write_text("x")
    with pytest.raises(InputError, match="beside the envelope"):
        sign_files([tmp_path / "a" / "R.html"], {}, load_private_key(keys[0]), tmp_path / "R.intoto.json")


# ------------------------------------------------------------------------------------------------ CLI


def cli(*args: str, home: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "attnscope", *args],
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=600,
        check=False,
        env={**os.environ, "ATTNSCOPE_HOME": str(home), "PYTHONIOENCODING": "utf-8", **env},
    )


def one_line_error(completed: subprocess.CompletedProcess[str], code: int, prefix: str = "error: ") -> str:
    assert completed.returncode == code, (completed.returncode, completed.stdout, completed.stderr)
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(prefix), completed.stderr
    assert "Traceback" not in completed.stderr
    return lines[0]


def test_cli_keys_generate_and_verify(tmp_path, signed, keys):
    home = tmp_path / "home"
    (tmp_path / "pass.txt").write_text("s3cret\n")
    made = cli("keys", "generate", "--passphrase-file", str(tmp_path / "pass.txt"), home=home)
    assert made.returncode == 0, made.stderr
    private_path = home / "keys" / "attnscope-signing.key"
    assert str(private_path) in made.stdout and str(home / "keys" / "attnscope-signing.pub") in made.stdout
    assert stat.S_IMODE(private_path.stat().st_mode) == 0o600
    assert key_id(load_public_key(home / "keys" / "attnscope-signing.pub")) in made.stdout
    assert isinstance(load_private_key(private_path, b"s3cret"), Ed25519PrivateKey)  # the line break dropped
    assert "already exists" in one_line_error(cli("keys", "generate", home=home), 2)
    from_env = cli("keys", "generate", "--out", str(tmp_path / "env"), home=home, ATTNSCOPE_KEY_PASSPHRASE="pw")
    assert from_env.returncode == 0 and load_private_key(tmp_path / "env" / "attnscope-signing.key", b"pw")

    ok = cli("verify", str(signed), "--key", str(keys[1]), home=home)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith(f"verified: signature by {key_id(load_public_key(keys[1]))}, 2 files")
    # without --key: the default key (home/keys) did not sign it — which keyid did, and that --key is needed
    line = one_line_error(cli("verify", str(signed), home=home), 2)
    assert envelope_of(signed)["signatures"][0]["keyid"] in line and "--key" in line
    flip(signed.parent / "R.json", 3)
    line = one_line_error(cli("verify", str(signed), "--key", str(keys[1]), home=home), 1, "verification failed: ")
    assert line.startswith("verification failed: R.json: SHA-256 is")
    assert "exit status" in cli("verify", "--help", home=home).stdout


def test_cli_bad_inputs_are_one_line_errors(tmp_path, signed, keys):
    home = tmp_path / "home"
    (tmp_path / "not.json").write_text("<html>")
    (tmp_path / "foreign.json").write_text(json.dumps({"schema_version": 1, "result": "report"}))
    cases = [
        (("verify", str(tmp_path / "missing.intoto.json"), "--key", str(keys[1])), "does not exist"),
        (("verify", str(tmp_path / "not.json"), "--key", str(keys[1])), "is not JSON"),
        (("verify", str(tmp_path / "foreign.json"), "--key", str(keys[1])), "is not a DSSE envelope"),
        (("verify", str(signed), "--key", str(tmp_path / "missing.pub")), "missing.pub does not exist"),
        (("verify", str(signed)), "no default public key"),
        (("verify", str(signed), "--key", str(keys[0])), "is a private key"),
        (("keys", "generate", "--passphrase-file", str(tmp_path / "none.txt")), "none.txt does not exist"),
        (("report", "hello", "--out", str(tmp_path / "r.html"), "--sign"), "run 'attnscope keys generate'"),
        (("report", "hello", "--out", str(tmp_path / "r.html"), "--key", str(keys[0])), "go with --sign"),
    ]
    for args, message in cases:
        assert message in one_line_error(cli(*args, home=home), 2), args
    assert not (tmp_path / "r.html").exists()


def test_report_sign_end_to_end_then_verify_and_tamper(tmp_path):
    home = tmp_path / "home"
    (tmp_path / "pass.txt").write_text("pw")
    assert cli("keys", "generate", "--passphrase-file", str(tmp_path / "pass.txt"), home=home).returncode == 0
    out = tmp_path / "R.html"
    args = ("report", "Paris is in France. The capital of France is", "-m", "tiny:gpt2", "--methods", "attention")
    wrong = cli(*args, "--out", str(out), "--sign", "--quiet", home=home, ATTNSCOPE_KEY_PASSPHRASE="nope")
    assert "wrong passphrase" in one_line_error(wrong, 2) and not out.exists()  # refused before the report ran
    made = cli(
        *args, "--out", str(out), "--sign", "--quiet", "--passphrase-file", str(tmp_path / "pass.txt"), home=home
    )
    assert made.returncode == 0, made.stderr
    envelope = tmp_path / "R.intoto.json"
    assert envelope.is_file() and (tmp_path / "R.json").is_file()
    statement = json.loads(base64.b64decode(envelope_of(envelope)["payload"]))
    assert statement["predicate"] == json.loads((tmp_path / "R.json").read_text(encoding="utf-8"))["provenance"]
    assert statement["predicate"]["model_spec"] == "tiny:gpt2"
    assert {s["name"] for s in statement["subject"]} == {"R.html", "R.json"}
    verified = cli("verify", str(envelope), home=home)  # the default public key signed it
    assert verified.returncode == 0 and verified.stdout.startswith("verified: signature by"), verified.stderr
    # on "another machine": only the three files and the public key, copied elsewhere
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for name in ("R.html", "R.json", "R.intoto.json"):
        (elsewhere / name).write_bytes((tmp_path / name).read_bytes())
    (elsewhere / "signer.pub").write_bytes((home / "keys" / "attnscope-signing.pub").read_bytes())
    other = cli(
        "verify", str(elsewhere / "R.intoto.json"), "--key", str(elsewhere / "signer.pub"), home=tmp_path / "h2"
    )
    assert other.returncode == 0, other.stderr
    flip(out, len(out.read_bytes()) // 2)
    failed = cli("verify", str(envelope), home=home)
    assert one_line_error(failed, 1, "verification failed: ").startswith("verification failed: R.html: SHA-256 is")
