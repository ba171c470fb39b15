"""A real server on 127.0.0.1 answers 20 concurrent analyses, each with its own correct result."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

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


@contextmanager
def running_server(host: ModelHost, **app_options: Any) -> Iterator[str]:
    """A real uvicorn server for ``host`` (``create_app(host, **app_options)``) on 127.0.0.1 in a
    thread; yields its base URL."""
    port = free_port()
    app = create_app(host, **app_options)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_twenty_concurrent_requests_all_succeed_with_their_own_numbers():
    host = ModelHost(loader=loader)
    host.load("tiny:llama")
    texts = [f"request number {i}: {'北京' * (i % 3)} and some words" for i in range(20)]
    with running_server(host) as base, httpx.Client(base_url=base, timeout=120) as http:

        def ask(text: str) -> dict:
            response = http.post("/api/analyze", json={"text": text, "layer": 1, "head": "max"})
            assert response.status_code == 200, response.text
            return response.json()

        with ThreadPoolExecutor(max_workers=20) as pool:
            answers = list(pool.map(ask, texts))
    model = tiny("llama")
    for text, answer in zip(texts, answers, strict=True):
        assert answer["text"] == text
        expected = capture(model, text).attention(1, "max", rows=[-1])[0]
        np.testing.assert_allclose(answer["attention"]["weights"], expected, atol=1e-6)
