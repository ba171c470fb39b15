"""POST /api/generate and the steps array, on a real server: streamed tokens, every step's row equal
to the library's (the answer equals the CLI's JSON: tests/test_contracts.py)."""

from __future__ import annotations

import json
import threading
import time

import httpx
import numpy as np
import pytest

from attnscope.capture.generation import generate
from attnscope.server import binary
from attnscope.server.host import ModelHost
from tests.conftest import CHINESE, ENGLISH, tiny
from tests.server.conftest import loader
from tests.server.test_load import running_server


def test_generate_streams_tokens_and_serves_the_steps():
    host = ModelHost(loader=loader)
    host.load("tiny:qwen2")
    events: list[dict] = []

    def listen(base: str) -> None:
        with httpx.stream("GET", f"{base}/api/progress/gen-1", timeout=60) as response:
            for line in response.iter_lines():
                if line.startswith("data: "):
                    events.append(json.loads(line[6:]))

    with running_server(host) as base, httpx.Client(base_url=base, timeout=120) as http:
        listener = threading.Thread(target=listen, args=(base,))
        listener.start()
        time.sleep(0.3)
        answer = http.post(
            "/api/generate",
            json={"text": CHINESE, "max_new_tokens": 6, "head": 1, "top_k": 3, "progress_id": "gen-1"},
        )
        assert answer.status_code == 200, answer.text
        listener.join(timeout=30)
        body = answer.json()
        streamed = [item for event in events for item in event["items"]]
        assert [(i["step"], i["id"]) for i in streamed] == [(s["step"], s["token"]["id"]) for s in body["steps"]]
        assert [i["prob"] for i in streamed] == pytest.approx([s["prob"] for s in body["steps"]], abs=1e-7)
        assert events[-1]["finished"] and events[-1]["done"] == 6

        trace = generate(tiny("qwen2"), CHINESE, max_new_tokens=6)
        for head in ("mean", "2"):
            raw = http.get(f"/api/traces/{body['trace_id']}/steps", params={"layer": 1, "head": head})
            assert raw.status_code == 200, raw.text
            header, steps = binary.decode(raw.content)
            assert steps.shape == (6, len(trace.tokens))
            expected = trace.attention(1, "mean" if head == "mean" else 2, rows=[s.position - 1 for s in trace.steps])
            np.testing.assert_allclose(steps, expected, atol=1e-3)  # float16 on the wire
            assert header["positions"] == [s.position for s in trace.steps]
        # an analysis of prompt + generation reads the generation's trace: same text, same numbers
        full = body["prompt"]["text"] + body["generated"]["text"]
        analysis = http.post("/api/analyze", json={"text": full, "query": body["steps"][2]["position"] - 1}).json()
        assert analysis["provenance"]["generation"]["max_new_tokens"] == 6
        np.testing.assert_allclose(
            analysis["attention"]["weights"][: body["steps"][2]["position"]],
            trace.step_attention(2),
            atol=1e-6,
        )
        # per-step attribution of the kept generation, equal to the library's
        scored = http.post(f"/api/traces/{body['trace_id']}/attribute", json={"method": "grad-x-input"})
        assert scored.status_code == 200, scored.text
        from attnscope.methods.steps import step_attribution

        expected = step_attribution(tiny("qwen2"), trace, "grad-x-input")
        assert scored.json()["result"] == "step_attribution" and scored.json()["positions"] == expected.positions
        for row, position in zip(scored.json()["scores"], expected.positions, strict=True):
            assert len(row) == position
        np.testing.assert_allclose(scored.json()["scores"][2], expected.scores[2, : expected.positions[2]], atol=1e-6)
        refused = http.post(f"/api/traces/{body['trace_id']}/attribute", json={"method": "flow"})
        assert refused.status_code == 422 and "cannot attribute" in refused.json()["detail"]
        refused = http.post(
            f"/api/traces/{body['trace_id']}/attribute", json={"method": "rollout", "options": {"steps": 3}}
        )
        assert refused.status_code == 422 and "steps" in refused.json()["detail"]
        # the page names the generation's trace: another text or an unknown id is refused
        wrong = http.post("/api/analyze", json={"text": "another text", "trace_id": body["trace_id"]})
        assert wrong.status_code == 400 and "another text" in wrong.json()["detail"]
        gone = http.post("/api/analyze", json={"text": full, "trace_id": "0123456789abcdef"})
        assert gone.status_code == 404
        named = http.post("/api/analyze", json={"text": full, "trace_id": body["trace_id"], "query": 3}).json()
        assert named["trace_id"] == body["trace_id"] and named["attention"]["query"] == 3
        # an analysis trace has no steps
        other = http.post("/api/analyze", json={"text": ENGLISH}).json()
        refused = http.get(f"/api/traces/{other['trace_id']}/steps")
        assert refused.status_code == 400 and "not a generation" in refused.json()["detail"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "exactly one of text and messages"),
        ({"text": "x", "messages": [{"role": "user", "content": "y"}]}, "exactly one"),
        ({"text": ""}, "empty"),
        ({"text": "x", "max_new_tokens": 0}, "max_new_tokens"),
        ({"text": "x", "max_new_tokens": "5"}, "integer"),
        ({"text": "x", "temperature": 0.5}, "do_sample"),
        ({"text": "x", "do_sample": True, "temperature": -1.0}, "temperature"),
        ({"text": "x", "do_sample": True, "sample_top_k": 0}, "sample_top_k"),
        ({"text": "x", "num_beams": 99}, "num_beams"),
        ({"text": "x", "stop": [""]}, "stop"),
        ({"text": "x", "head": "all"}, "not all"),
        ({"text": "x", "top_k": 0}, "top_k"),
        ({"text": "x", "messages": None, "unknown": 1}, "unknown"),
        ({"messages": [{"role": "user"}]}, "content"),
        ({"text": "x", "attribute": "flow"}, "cannot attribute"),
        ({"text": "x", "options": {"steps": 4}}, "options are for attribute"),
        ({"text": "x", "attribute": "integrated-gradients", "options": {"steps": 0}}, "steps"),
    ],
)
def test_bad_generate_requests_are_refused_in_one_line(client, body, message):
    answer = client.post("/api/generate", json=body)
    assert answer.status_code in (400, 422), answer.text
    detail = answer.json()["detail"]
    assert message.lower() in detail.lower() and "\n" not in detail


def test_generate_refuses_an_encoder_and_unknown_steps(client):
    client.post("/api/model", json={"spec": "tiny:bert"})
    answer = client.post("/api/generate", json={"text": "hello"})
    assert answer.status_code in (400, 422) and "is an encoder" in answer.json()["detail"]
    assert client.get("/api/traces/nope/steps").status_code == 404


def test_beam_search_answers_its_tree_and_greedy_none(client):
    answer = client.post("/api/generate", json={"text": ENGLISH, "max_new_tokens": 5, "num_beams": 3})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    trace = generate(tiny("qwen2"), ENGLISH, max_new_tokens=5, num_beams=3)
    assert len(body["beam_tree"]) == len(trace.beam_tree) >= len(body["steps"])
    keys = {"rank", "token", "parent", "logprob", "logprob_cum", "best", "finished"}
    for level, nodes in zip(body["beam_tree"], trace.beam_tree, strict=True):
        assert all(set(node) == keys and set(node["token"]) == {"id", "text"} for node in level)
        assert [(n["rank"], n["token"]["id"], n["parent"], n["best"], n["finished"]) for n in level] == [
            (n.rank, n.token_id, n.parent, n.best, n.finished) for n in nodes
        ]
        assert [n["token"]["text"] for n in level] == [n.text for n in nodes]
        np.testing.assert_allclose([n["logprob_cum"] for n in level], [n.logprob_cum for n in nodes], atol=1e-6)
    best = [n["token"]["id"] for level in body["beam_tree"] for n in level if n["best"]]
    assert best == [s["token"]["id"] for s in body["steps"]]
    greedy = client.post("/api/generate", json={"text": ENGLISH, "max_new_tokens": 3}).json()
    assert "beam_tree" not in greedy and len(greedy["steps"]) == 3
