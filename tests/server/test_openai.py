"""The OpenAI-compatible completions endpoint, and occlusion through it against a real server."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import httpx
import numpy as np
import pytest
import torch

from attnscope.attribution.scorers.http import OpenAICompletionsScorer
from attnscope.capture.tokens import tokenize
from attnscope.errors import AttnscopeError
from attnscope.methods.run import attribute
from tests.conftest import ENGLISH, packaged, tiny


def test_echo_logprobs_match_plain_transformers(client):
    model = tiny("qwen2")
    prompt = "score 北京 please"
    response = client.post("/v1/completions", json={"prompt": prompt, "max_tokens": 0, "echo": True, "logprobs": 3})
    assert response.status_code == 200, response.text
    choice = response.json()["choices"][0]
    logprobs = choice["logprobs"]
    tokens = [t for t in tokenize(model.tokenizer, prompt)]
    ids = [t.id for t in tokens]
    with torch.no_grad():
        expected = torch.log_softmax(model.model(input_ids=torch.tensor([ids])).logits[0].double(), -1)
    assert "".join(logprobs["tokens"]) == prompt and choice["text"] == prompt
    assert logprobs["text_offset"] == [t.start for t in tokens if t.start is not None]
    assert logprobs["token_logprobs"][0] is None  # no token before the first one
    for position in range(1, len(ids)):
        assert logprobs["token_logprobs"][position] == pytest.approx(
            float(expected[position - 1, ids[position]]), abs=1e-4
        )
        assert len(logprobs["top_logprobs"][position]) <= 3
        assert max(logprobs["top_logprobs"][position].values()) == pytest.approx(
            float(expected[position - 1].max()), abs=1e-4
        )


def test_greedy_completion_follows_the_argmax(client):
    model = tiny("qwen2")
    prompt = "greedy"
    answer = client.post("/v1/completions", json={"prompt": prompt, "max_tokens": 3, "logprobs": 0}).json()
    ids = [t.id for t in tokenize(model.tokenizer, prompt)]
    generated = []
    with torch.no_grad():
        for _ in range(3):
            generated.append(int(model.model(input_ids=torch.tensor([ids + generated])).logits[0, -1].argmax()))
    assert answer["choices"][0]["text"] == model.tokenizer.decode(generated, skip_special_tokens=True)
    assert answer["usage"] == {"prompt_tokens": len(ids), "completion_tokens": 3, "total_tokens": len(ids) + 3}


def test_completion_errors_are_clear(client):
    assert client.post("/v1/completions", json={"prompt": "x", "temperature": 0.7}).status_code == 400
    assert client.post("/v1/completions", json={"prompt": "x", "max_tokens": 10_000}).status_code == 422
    assert client.post("/v1/completions", json={"prompt": ""}).status_code == 400
    client.post("/api/model", json={"spec": "tiny:bert"})
    response = client.post("/v1/completions", json={"prompt": "x"})
    assert response.status_code == 400 and "causal" in response.json()["detail"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def served_smollm2():
    """`attnscope serve` in its own process on 127.0.0.1, serving the packaged SmolLM2."""
    packaged("smollm2-135m")  # skips (or fails under ATTNSCOPE_REQUIRE_MODELS) when not installed
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "attnscope.cli", "serve", "--model", "smollm2-135m", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/api/model", timeout=2).json()["status"] == "ready":
                    break
            except httpx.HTTPError:
                pass
            assert process.poll() is None, process.stdout.read().decode()
            time.sleep(0.5)
        else:
            pytest.fail("attnscope serve did not come up")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_http_scorer_gives_the_in_process_occlusion_scores(served_smollm2):
    model = packaged("smollm2-135m")
    local = attribute(model, ENGLISH, "occlusion", granularity="word")
    remote = attribute(model, ENGLISH, "occlusion", granularity="word", scorer=OpenAICompletionsScorer(served_smollm2))
    assert remote.details["scorer"] == "OpenAICompletionsScorer"
    np.testing.assert_allclose(remote.scores, local.scores, atol=2e-3)
    assert remote.details["base_logprob"] == pytest.approx(local.details["base_logprob"], abs=1e-3)
    tokens = attribute(model, ENGLISH, "occlusion", scorer=OpenAICompletionsScorer(served_smollm2 + "/v1"))
    np.testing.assert_allclose(tokens.scores, attribute(model, ENGLISH, "occlusion").scores, atol=2e-3, equal_nan=True)


def test_cli_occlusion_through_the_endpoint(served_smollm2):
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "attnscope.cli",
            "attribute",
            ENGLISH,
            "--method",
            "occlusion",
            "-m",
            "smollm2-135m",
            "--granularity",
            "word",
            "--scorer-url",
            served_smollm2,
            "--json",
            "-q",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    import json

    body = json.loads(completed.stdout)
    local = attribute(packaged("smollm2-135m"), ENGLISH, "occlusion", granularity="word")
    np.testing.assert_allclose(body["scores"], local.scores, atol=2e-3)
    assert body["target"] == {"text": " Paris", "ids": local.target["ids"]}


def test_unreachable_endpoint_is_a_clear_error():
    scorer = OpenAICompletionsScorer(f"http://127.0.0.1:{free_port()}")
    with pytest.raises(AttnscopeError, match="cannot reach"):
        scorer.score(["a"], " b")
