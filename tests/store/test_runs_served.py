"""The runs store behind the HTTP API and the CLI, with real processes: the server keeps every
analysis, attribution and generation it answers; a server killed with SIGKILL loses no run it had
answered; a server and CLI processes storing at the same time all succeed.

Expected values are the answers the server gave (the stored answer must equal them) and the SQLite
file read with the sqlite3 module directly.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from attnscope.server.app import create_app
from attnscope.server.host import ModelHost
from attnscope.store.runs import RunsStore
from tests.conftest import CHINESE, ENGLISH
from tests.server.conftest import loader
from tests.server.test_load import free_port

MODEL = "tiny:qwen2"


@pytest.fixture
def stored(tmp_path):
    host = ModelHost(loader=loader)
    host.store = RunsStore(tmp_path)
    host.load(MODEL)
    yield TestClient(create_app(host), raise_server_exceptions=False), host.store
    host.store.close()


def without_handles(answer: dict) -> dict:
    """The answer as the store keeps it: no handles, and the record of the personal-data check (none
    found in these texts) in its provenance."""
    kept = {k: v for k, v in answer.items() if k not in ("run_id", "trace_id")}
    record = {**kept["provenance"], "masking_policy": "mask", "masked_spans": 0, "run_id": answer["run_id"]}
    return {**kept, "provenance": record}


def test_the_server_keeps_what_it_answers_and_shows_it_back_exactly(stored, tmp_path):
    client, _ = stored
    analysis = client.post("/api/analyze", json={"text": CHINESE, "layer": 0, "head": 1}).json()
    attribution = client.post("/api/attribute", json={"text": ENGLISH, "method": "grad-x-input"}).json()
    generation = client.post("/api/generate", json={"text": ENGLISH, "max_new_tokens": 3}).json()
    ids = [analysis["run_id"], attribution["run_id"], generation["run_id"]]
    listing = client.get("/api/runs").json()
    assert listing["total"] == 3 and [r["id"] for r in listing["runs"]] == ids[::-1]
    assert [r["kind"] for r in listing["runs"]] == ["generation", "attribution", "analysis"]
    assert listing["runs"][1]["method"] == "grad-x-input" and listing["runs"][2]["text"] == CHINESE
    for run_id, answer in zip(ids, (analysis, attribution, generation), strict=True):
        shown = client.get(f"/api/runs/{run_id}").json()
        assert shown["run"]["id"] == run_id and shown["answer"] == without_handles(answer)
    assert [r["id"] for r in client.get("/api/runs", params={"text": "首都"}).json()["runs"]] == ids[:1]
    assert client.get("/api/runs", params={"kind": "attribution"}).json()["total"] == 1
    assert client.get("/api/runs", params={"method": "grad-x-input"}).json()["total"] == 1
    assert client.get("/api/runs", params={"model": "gpt2"}).json()["total"] == 0
    assert client.get("/api/runs", params={"until": "2000-01-01"}).json()["total"] == 0

    # a layer/head change on the same text leaves the tokens out of the answer, not out of the run
    lean = client.post("/api/analyze", json={"text": CHINESE, "layer": 1, "include_tokens": False}).json()
    assert "tokens" not in lean and "tokens" in client.get(f"/api/runs/{lean['run_id']}").json()["answer"]

    export = client.get(f"/api/runs/{ids[0]}/export")
    assert export.status_code == 200 and export.headers["content-type"] == "application/zip"
    (tmp_path / "run.zip").write_bytes(export.content)
    from attnscope.store.transfer import read_export

    facts, _ = read_export(tmp_path / "run.zip")
    assert facts["id"] == ids[0]
    assert client.delete(f"/api/runs/{ids[0]}").json()["run_id"] == ids[0]
    assert client.get(f"/api/runs/{ids[0]}").status_code == 404
    assert client.delete(f"/api/runs/{ids[0]}").status_code == 404


@pytest.mark.parametrize(
    "params",
    [{"limit": 0}, {"limit": "many"}, {"since": "yesterday"}, {"kind": "virus"}, {"offset": -1}, {"colour": "red"}],
)
def test_bad_run_queries_are_refused_with_a_clear_422(stored, params):
    client, _ = stored
    response = client.get("/api/runs", params=params)
    assert response.status_code == 422 and response.json()["code"] == "invalid_request"


def test_bad_run_ids_and_a_server_without_a_store(stored):
    stored_client, _ = stored
    host = ModelHost(loader=loader)  # a server started with --no-store
    host.load(MODEL)
    client = TestClient(create_app(host), raise_server_exceptions=False)
    for path in ("/api/runs/xyz", "/api/runs/0123456789abcdeg/export"):
        assert stored_client.get(path).status_code == 422
    assert stored_client.get("/api/runs/0123456789abcdef").json()["code"] == "not_found"
    refused = client.get("/api/runs")  # the tests' plain host keeps no runs
    assert refused.status_code == 400 and "--no-store" in refused.json()["detail"]
    assert "run_id" not in client.post("/api/analyze", json={"text": ENGLISH}).json()


# ---- real processes ---------------------------------------------------------------------------------
def serve(home: Path, port: int) -> subprocess.Popen:
    env = {**os.environ, "ATTNSCOPE_HOME": str(home)}
    command = [sys.executable, "-m", "attnscope", "serve", "--model", MODEL, "--port", str(port), "--quiet"]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"attnscope serve exited: {process.stderr.read().decode()}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/model", timeout=2).json()["status"] == "ready":
                return process
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError("attnscope serve did not become ready")


def stored_ids(home: Path) -> set[str]:
    with sqlite3.connect(home / "store" / "runs.sqlite3") as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        return {row[0] for row in db.execute("SELECT id FROM runs")}


def test_a_killed_server_loses_no_run_it_had_answered(tmp_path):
    port = free_port()
    server = serve(tmp_path, port)
    answered: list[str] = []
    stop = threading.Event()

    def ask() -> None:
        number = 0
        while not stop.is_set():
            number += 1
            try:
                response = httpx.post(
                    f"http://127.0.0.1:{port}/api/analyze", json={"text": f"{ENGLISH} {number}"}, timeout=30
                )
            except httpx.HTTPError:
                return  # the server is gone
            if response.status_code == 200:
                answered.append(response.json()["run_id"])

    workers = [threading.Thread(target=ask) for _ in range(3)]
    for worker in workers:
        worker.start()
    deadline = time.monotonic() + 60
    while len(answered) < 12 and time.monotonic() < deadline:
        time.sleep(0.05)
    server.send_signal(signal.SIGKILL)  # mid-flight: requests are being captured and stored
    server.wait(timeout=20)
    stop.set()
    for worker in workers:
        worker.join(timeout=60)
    assert len(answered) >= 12
    assert set(answered) <= stored_ids(tmp_path)  # every answered run is there, and the file is sound

    server = serve(tmp_path, port)  # and the store opens again after the kill
    try:
        listing = httpx.get(f"http://127.0.0.1:{port}/api/runs", params={"limit": 1000}).json()
        assert set(answered) <= {r["id"] for r in listing["runs"]}
        for run_id in answered[:3]:
            assert httpx.get(f"http://127.0.0.1:{port}/api/runs/{run_id}").json()["answer"]["result"] == "analysis"
    finally:
        server.terminate()
        server.wait(timeout=20)


def test_a_server_and_cli_processes_store_at_the_same_time(tmp_path):
    port = free_port()
    server = serve(tmp_path, port)
    env = {**os.environ, "ATTNSCOPE_HOME": str(tmp_path)}
    try:
        clis = [
            subprocess.Popen(
                [sys.executable, "-m", "attnscope", "analyze", f"{CHINESE}{n}", "--model", MODEL, "--store", "--json"],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            for n in range(3)
        ]
        served = [
            httpx.post(f"http://127.0.0.1:{port}/api/analyze", json={"text": f"{ENGLISH} {n}"}, timeout=60).json()
            for n in range(8)
        ]
        outputs = [process.communicate(timeout=300) for process in clis]
    finally:
        server.terminate()
        server.wait(timeout=20)
    assert all(process.returncode == 0 for process in clis), [err.decode()[-400:] for _, err in outputs]
    from_cli = [json.loads(out)["run_id"] for out, _ in outputs]
    assert stored_ids(tmp_path) == {*from_cli, *(answer["run_id"] for answer in served)}
    listed = subprocess.run(
        [sys.executable, "-m", "attnscope", "runs", "list", "--json", "--kind", "analysis"],
        env=env,
        capture_output=True,
        check=True,
    )
    runs = json.loads(listed.stdout)["runs"]
    assert {r["origin"] for r in runs} == {"cli", "server"} and len(runs) == 11


def test_runs_commands_end_to_end_and_bad_input(tmp_path):
    env = {**os.environ, "ATTNSCOPE_HOME": str(tmp_path / "home")}

    def attnscope(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "attnscope", *args], env=env, capture_output=True, text=True, timeout=300
        )

    made = attnscope("generate", ENGLISH, "--model", "tiny:gpt2", "--max-new-tokens", "3", "--store", "--json")
    run_id = json.loads(made.stdout)["run_id"]
    assert f"stored as run {run_id}" in made.stderr
    listing = attnscope("runs", "list")
    assert run_id in listing.stdout and "generation" in listing.stdout
    shown = json.loads(attnscope("runs", "show", run_id).stdout)
    assert shown["answer"] == without_handles(json.loads(made.stdout))
    assert attnscope("runs", "export", run_id, "--out", str(tmp_path / "r.zip")).returncode == 0
    assert attnscope("runs", "delete", run_id).returncode == 0
    assert "no stored runs" in attnscope("runs", "list").stdout
    assert attnscope("runs", "import", str(tmp_path / "r.zip")).returncode == 0
    assert json.loads(attnscope("runs", "show", run_id).stdout)["answer"] == shown["answer"]
    # a signed export verifies on its own, and not once a byte of it changes
    assert attnscope("keys", "generate").returncode == 0
    signed = attnscope("runs", "export", run_id, "--out", str(tmp_path / "s.zip"), "--sign")
    assert signed.returncode == 0 and (tmp_path / "s.intoto.json").exists(), signed.stderr
    assert attnscope("verify", str(tmp_path / "s.intoto.json")).returncode == 0
    data = bytearray((tmp_path / "s.zip").read_bytes())
    data[len(data) // 2] ^= 1
    (tmp_path / "s.zip").write_bytes(bytes(data))
    failed = attnscope("verify", str(tmp_path / "s.intoto.json"))
    assert failed.returncode == 1 and "s.zip" in failed.stderr
    (tmp_path / "junk.zip").write_bytes(b"\x00" * 64)
    for args, message in (
        (("runs", "show", "nope"), "16 hexadecimal"),
        (("runs", "show", "0123456789abcdef"), "no stored run"),
        (("runs", "import", str(tmp_path / "junk.zip")), "not a zip"),
        (("runs", "import", str(tmp_path / "r.zip")), "already stored"),
        (("runs", "export", run_id, "--out", str(tmp_path / "missing" / "r.zip")), "does not exist"),
        (("runs", "list", "--since", "soon"), "not a date"),
        (("runs", "list", "--limit", "0"), "--limit"),
    ):
        refused = attnscope(*args)
        assert refused.returncode == 2 and message in refused.stderr, (args, refused.stderr)
        assert refused.stderr.count("\n") == 1 and "Traceback" not in refused.stderr
