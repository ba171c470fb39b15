"""Forward-pass progress: the capture callback, and server-sent events from a real server."""

from __future__ import annotations

import json
import threading
import time

import httpx

from attnscope.capture import capture
from attnscope.server.host import ModelHost
from tests.conftest import tiny
from tests.server.conftest import loader
from tests.server.test_load import running_server


def test_capture_reports_every_transformer_block():
    for family, blocks in (("llama", 3), ("gpt2", 3), ("bert", 3), ("t5", 4)):
        seen: list[tuple[int, int]] = []
        target = "x" if family == "t5" else None
        capture(tiny(family), "progress please", target=target, progress=lambda d, t, seen=seen: seen.append((d, t)))
        assert seen == [(i, blocks) for i in range(1, blocks + 1)], family


def test_progress_streams_as_server_sent_events():
    host = ModelHost(loader=loader)
    host.load("tiny:llama")
    events: list[dict] = []

    def listen(base: str) -> None:
        with httpx.stream("GET", f"{base}/api/progress/abc-123", timeout=60) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            for line in response.iter_lines():
                if line.startswith("data: "):
                    events.append(json.loads(line[6:]))

    with running_server(host) as base:
        listener = threading.Thread(target=listen, args=(base,))
        listener.start()
        time.sleep(0.3)
        answer = httpx.post(f"{base}/api/analyze", json={"text": "stream my progress", "progress_id": "abc-123"})
        assert answer.status_code == 200
        listener.join(timeout=30)
        assert not listener.is_alive()
    assert events[-1]["finished"] is True and events[-1]["done"] == events[-1]["total"] == 3
    done = [e["done"] for e in events]
    assert done == sorted(done)
    assert host.job_state("abc-123")["total"] == 0  # forgotten after the stream
