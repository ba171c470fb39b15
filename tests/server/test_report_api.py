"""``POST /api/report``: the report as a zip, signed with the server's key on request; the signature
checked with the `attnscope verify` command (a real process) and by hand with ``cryptography``."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import subprocess
import sys
import zipfile

import pytest
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from attnscope.governance.keys import generate_keys
from tests.conftest import ENGLISH

PHONE = "13812345678"


def files_of(response) -> dict[str, bytes]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def test_a_report_is_answered_as_a_zip_and_signed_with_the_servers_key(client, tmp_path, monkeypatch):
    monkeypatch.setenv("ATTNSCOPE_HOME", str(tmp_path / "home"))
    body = {"text": f"Call {PHONE}. {ENGLISH}", "methods": ["attention", "grad-x-input"]}
    plain = files_of(client.post("/api/report", json=body))
    assert sorted(plain) == ["report.html", "report.json"]
    data = json.loads(plain["report.json"])
    assert data["result"] == "report" and "[PHONE]" in data["text"]  # masked: the file leaves the process
    assert all(PHONE.encode() not in content for content in plain.values())

    refused = client.post("/api/report", json={**body, "sign": True})
    assert refused.status_code == 400 and "attnscope keys generate" in refused.json()["detail"]
    _, public = generate_keys(tmp_path / "home" / "keys", None)
    signed = files_of(client.post("/api/report", json={**body, "sign": True}))
    assert sorted(signed) == ["report.html", "report.intoto.json", "report.json"]
    folder = tmp_path / "report"
    folder.mkdir()
    for name, content in signed.items():
        (folder / name).write_bytes(content)

    # by hand: the DSSE pre-authentication encoding, Ed25519, each subject's SHA-256
    envelope = json.loads(signed["report.intoto.json"])
    payload = base64.b64decode(envelope["payload"])
    kind = envelope["payloadType"].encode()
    pae = b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)
    key = load_pem_public_key(public.read_bytes())
    key.verify(base64.b64decode(envelope["signatures"][0]["sig"]), pae)  # raises if it does not verify
    statement = json.loads(payload)
    assert {s["name"]: s["digest"]["sha256"] for s in statement["subject"]} == {
        name: hashlib.sha256(signed[name]).hexdigest() for name in ("report.html", "report.json")
    }
    assert statement["predicate"]["signing_key_fingerprint"] == envelope["signatures"][0]["keyid"]

    env = {**os.environ, "ATTNSCOPE_HOME": str(tmp_path / "elsewhere")}
    verify = [sys.executable, "-m", "attnscope", "verify", str(folder / "report.intoto.json"), "--key", str(public)]
    assert subprocess.run(verify, env=env, capture_output=True).returncode == 0
    html = bytearray((folder / "report.html").read_bytes())
    html[100] ^= 1
    (folder / "report.html").write_bytes(bytes(html))
    failed = subprocess.run(verify, env=env, capture_output=True, text=True)
    assert failed.returncode == 1 and "report.html" in failed.stderr


@pytest.mark.parametrize(
    ("body", "status"),
    [({"text": ENGLISH, "methods": ["no-such"]}, 422), ({"text": ENGLISH, "sign": "yes"}, 422), ({"text": ""}, 422)],
)
def test_bad_report_requests_are_refused(client, body, status):
    response = client.post("/api/report", json=body)
    assert response.status_code == status and response.json()["code"] in ("invalid_request", "bad_input")
