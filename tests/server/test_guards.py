"""What every request passes first, on real servers: the body-size limit counted while a chunked body
arrives, and the Host check of a server bound to a loopback address (DNS rebinding)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from attnscope.server.app import MAX_REQUEST_BYTES
from attnscope.server.host import ModelHost
from tests.server.conftest import loader
from tests.server.test_load import free_port, running_server

FRAME = b"%x\r\n" % 65536 + b"a" * 65536 + b"\r\n"  # one 64 KiB chunk of a chunked body


def _endless_upload(port: int) -> tuple[bytes, int, float]:
    """POST a chunked body that never ends; returns (the answer's first bytes, the bytes sent by the
    time it came, seconds until it came). Gives up after 25 s or 40 times the limit."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    head = b"POST /api/analyze HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
    sock.sendall(head + b"transfer-encoding: chunked\r\n\r\n")
    sent, stop = [0], threading.Event()

    def feed() -> None:
        try:
            while not stop.is_set() and sent[0] < 40 * MAX_REQUEST_BYTES:
                sock.sendall(FRAME)
                sent[0] += len(FRAME)
        except OSError:  # the server answered and closed the connection
            pass

    started = time.monotonic()
    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    sock.settimeout(25)
    try:
        answer = sock.recv(65536)
    except TimeoutError:
        answer = b""
    at_answer, seconds = sent[0], time.monotonic() - started
    try:
        while answer and (piece := sock.recv(65536)):  # the rest of the answer, until the server closes
            answer += piece
    except OSError:  # a reset: the server closed while the feeder was still sending
        pass
    stop.set()
    sock.close()
    feeder.join(timeout=10)
    return answer, at_answer, seconds


def test_a_chunked_body_that_never_ends_is_refused_at_the_limit_and_the_server_keeps_serving():
    host = ModelHost(loader=loader)
    host.load("tiny:qwen2")
    with running_server(host) as base:
        port = httpx.URL(base).port
        answer, sent, seconds = _endless_upload(port)
        assert answer.startswith(b"HTTP/1.1 413"), (answer[:200], sent, seconds)
        assert b'"code":"too_large"' in answer and b"connection: close" in answer.lower()
        assert seconds < 15 and sent < 5 * MAX_REQUEST_BYTES  # answered at the limit, not at the end
        assert httpx.get(f"{base}/api/model", timeout=30).json()["status"] == "ready"
        again = httpx.post(f"{base}/api/analyze", json={"text": "still serving"}, timeout=60)
        assert again.status_code == 200 and again.json()["text"] == "still serving"
        small = (b'{"text": "chunked ' + b"but small" + b'"}' for _ in range(1))  # chunked, under the limit
        response = httpx.post(f"{base}/api/analyze", content=small, headers={"content-type": "application/json"})
        assert response.status_code == 200 and response.json()["text"] == "chunked but small"


def test_a_loopback_server_refuses_foreign_host_headers():
    from attnscope.cli.serve import allowed_hosts

    host = ModelHost(loader=loader)
    host.load("tiny:qwen2")
    with running_server(host, allowed_hosts=allowed_hosts("127.0.0.1")) as base:
        port = httpx.URL(base).port
        for name in ("evil.example", f"evil.example:{port}", "127.0.0.1.evil.example", "attacker.localhost.example"):
            response = httpx.get(f"{base}/api/model", headers={"host": name})
            assert response.status_code == 400, name
            assert response.json()["code"] == "bad_host" and set(response.json()) == {"detail", "code"}
        refused = httpx.post(f"{base}/api/analyze", json={"text": "x"}, headers={"host": "evil.example"})
        assert refused.status_code == 400 and refused.json()["code"] == "bad_host"
        for name in (f"127.0.0.1:{port}", f"localhost:{port}", "localhost", f"[::1]:{port}", f"LOCALHOST:{port}"):
            assert httpx.get(f"{base}/api/model", headers={"host": name}).status_code == 200, name


def test_serve_allows_loopback_names_only_when_it_binds_loopback():
    from attnscope.cli.serve import allowed_hosts

    assert set(allowed_hosts("127.0.0.1")) == {"127.0.0.1", "localhost", "::1"}
    assert set(allowed_hosts("localhost")) == {"127.0.0.1", "localhost", "::1"}
    assert set(allowed_hosts("::1")) == {"127.0.0.1", "localhost", "::1"}
    assert allowed_hosts("0.0.0.0") is None and allowed_hosts("192.168.1.20") is None


def test_attnscope_serve_on_loopback_refuses_a_rebound_host_name(tmp_path):
    port = free_port()
    env = {**os.environ, "HOME": str(tmp_path), "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "attnscope", "serve", "--model", "tiny:qwen2", "--port", str(port), "-q"]
    server = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=Path(__file__).parents[2]
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline()  # "attnscope is serving ... (Ctrl+C stops it)"
        assert "is serving" in line, line
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                ok = httpx.get(f"{base}/api/model", timeout=5)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline
                time.sleep(0.1)
        assert ok.status_code == 200 and ok.json()["model"]["spec"] == "tiny:qwen2"
        evil = httpx.get(f"{base}/api/model", headers={"host": f"evil.example:{port}"}, timeout=5)
        assert evil.status_code == 400 and evil.json()["code"] == "bad_host"
        page = httpx.get(f"{base}/", headers={"host": "evil.example"}, timeout=5)
        assert page.status_code == 400 and "prompt-input" not in page.text
        assert httpx.get(f"{base}/api/model", headers={"host": f"localhost:{port}"}, timeout=5).status_code == 200
    finally:
        server.terminate()
        server.wait(timeout=30)
