"""A real server on 127.0.0.1 answers 20 concurrent analyses, each with its own correct result."""

from __future__ import annotations

import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import uvicorn

from attnscope.capture import capture
from attnscope.server.app import create_app
from attnscope.server.host import ModelHost
from tests.conftest import tiny
from tests.server.conftest import loader


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_twenty_concurrent_requests_all_succeed_with_their_own_numbers():
    host = ModelHost(loader=loader)
    host.load("tiny:llama")
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(host), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started
    texts = [f"request number {i}: {'北京' * (i % 3)} and some words" for i in range(20)]
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as http:

            def ask(text: str) -> dict:
                response = http.post("/api/analyze", json={"text": text, "layer": 1, "head": "max"})
                assert response.status_code == 200, response.text
                return response.json()

            with ThreadPoolExecutor(max_workers=20) as pool:
                answers = list(pool.map(ask, texts))
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    model = tiny("llama")
    for text, answer in zip(texts, answers, strict=True):
        assert answer["text"] == text
        expected = capture(model, text).attention(1, "max", rows=[-1])[0]
        np.testing.assert_allclose(answer["attention"]["weights"], expected, atol=1e-6)
