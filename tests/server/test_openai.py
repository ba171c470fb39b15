"""The OpenAI-compatible endpoints (/v1/completions, /v1/chat/completions) and occlusion through them.

Fast checks run on tiny:qwen2 in-process; the rest against one real ``attnscope serve -m smollm2-135m``
process on 127.0.0.1 that requires an API key (``--api-key-env``). Expected numbers come from plain
transformers on the same weights (:mod:`tests.server.openai_reference`); tolerance 2e-3 on
log-probabilities (float32 forwards, batched and cached differently).
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
import torch

from attnscope.attribution.scorers.http import OpenAIChatScorer, OpenAICompletionsScorer
from attnscope.capture.tokens import tokenize
from attnscope.errors import AttnscopeError, InputError
from attnscope.methods.run import attribute
from tests.conftest import ENGLISH, packaged, tiny
from tests.server import openai_reference as ref

KEY_ENV = "ATTNSCOPE_TEST_OPENAI_KEY"
UNSET_ENV = "ATTNSCOPE_TEST_OPENAI_KEY_NOT_SET"
QUESTION = "What is the capital of France? Answer with one word."  # answer "The" stays in the top 20
FRAGILE = "Translate to French: cat"  # without "French" or "to" the answer "En" leaves the top 20
TIMEOUT = httpx.Timeout(60, connect=10)
KEYED = ("--api-key-env", KEY_ENV)


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


def test_chat_on_tiny_follows_the_template_and_the_argmax(client):
    model = tiny("qwen2")
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "北京?"}]
    body = {"messages": messages, "max_completion_tokens": 3, "logprobs": True, "top_logprobs": 2, "model": "any"}
    answer = client.post("/v1/chat/completions", json=body).json()
    ids = ref.chat_ids(model.tokenizer, messages)
    expected = model.model.generate(torch.tensor([ids]), max_new_tokens=3, do_sample=False)[0, len(ids) :].tolist()
    choice = answer["choices"][0]
    assert answer["model"] == "any" and answer["object"] == "chat.completion"
    assert [list(ref.piece_bytes(model.tokenizer, i)) for i in expected] == [
        e["bytes"] for e in choice["logprobs"]["content"]
    ]
    assert choice["message"] == {
        "role": "assistant",
        "content": model.tokenizer.decode(expected, skip_special_tokens=True),
    }
    assert all(len(e["top_logprobs"]) == 2 for e in choice["logprobs"]["content"])
    assert answer["usage"]["prompt_tokens"] == len(ids)


def test_default_max_tokens_fill_the_context_and_stop_strings_cut(client):
    model = tiny("qwen2")  # a 256-token context
    messages = [{"role": "user", "content": "w " * 90}]
    prompt = len(ref.chat_ids(model.tokenizer, messages))
    assert 156 < prompt < 250
    answer = client.post("/v1/chat/completions", json={"messages": messages}).json()
    assert answer["usage"]["prompt_tokens"] == prompt and answer["usage"]["completion_tokens"] <= 256 - prompt
    response = client.post("/v1/chat/completions", json={"messages": messages, "max_tokens": 100})
    assert response.status_code == 400 and response.json()["code"] == "too_long"
    plain = client.post("/v1/completions", json={"prompt": "stop here", "max_tokens": 8}).json()["choices"][0]
    stop = plain["text"][3:5]
    cut = client.post("/v1/completions", json={"prompt": "stop here", "max_tokens": 8, "stop": [stop], "logprobs": 1})
    choice = cut.json()["choices"][0]
    assert choice["text"] == plain["text"][: plain["text"].find(stop)] and choice["finish_reason"] == "stop"
    assert "".join(choice["logprobs"]["tokens"]).startswith(choice["text"])


def test_chat_needs_a_chat_template_and_a_causal_model(client):
    packaged("gemma3-270m")  # a base model: its tokenizer has no chat template
    client.post("/api/model", json={"spec": "gemma3-270m"})
    response = client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}]})
    assert response.status_code == 400 and "chat template" in response.json()["detail"], response.text
    client.post("/api/model", json={"spec": "tiny:bert"})
    response = client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}]})
    assert response.status_code == 400 and "causal" in response.json()["detail"], response.text


def test_completion_errors_are_clear(client):
    assert client.post("/v1/completions", json={"prompt": "x", "temperature": 0.7}).status_code == 400
    assert client.post("/v1/completions", json={"prompt": "x", "max_tokens": 10_000}).status_code == 422
    assert client.post("/v1/completions", json={"prompt": ""}).status_code == 422
    client.post("/api/model", json={"spec": "tiny:bert"})
    response = client.post("/v1/completions", json={"prompt": "x"})
    assert response.status_code == 400 and "causal" in response.json()["detail"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def served_smollm2() -> Iterator[str]:
    """`attnscope serve -m smollm2-135m --api-key-env KEY_ENV` in its own process on 127.0.0.1; the key
    is in this process's environment too (under KEY_ENV) while the module runs."""
    packaged("smollm2-135m")  # skips (or fails under ATTNSCOPE_REQUIRE_MODELS) when not installed
    key = secrets.token_hex(16)
    before = os.environ.get(KEY_ENV)
    os.environ[KEY_ENV] = key
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "attnscope.cli", "serve", "-m", "smollm2-135m", "--port", str(port), *KEYED],
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
            assert process.poll() is None, process.stdout.read().decode()  # type: ignore[union-attr]
            time.sleep(0.5)
        else:
            pytest.fail("attnscope serve did not come up")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)
        if before is None:
            os.environ.pop(KEY_ENV, None)
        else:
            os.environ[KEY_ENV] = before


@pytest.fixture(scope="module")
def http(served_smollm2: str) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {os.environ[KEY_ENV]}"}
    with httpx.Client(base_url=served_smollm2, headers=headers, timeout=TIMEOUT) as client:
        yield client


def test_chat_answers_equal_plain_transformers(http):
    model = packaged("smollm2-135m")
    tokenizer = model.tokenizer
    messages = [{"role": "system", "content": "You are brief."}, {"role": "user", "content": QUESTION}]
    body = {"messages": messages, "max_tokens": 40, "logprobs": True, "top_logprobs": 20, "temperature": 0}
    answer = http.post("/v1/chat/completions", json=body).json()
    ids = ref.chat_ids(tokenizer, messages)
    generated = model.model.generate(torch.tensor([ids]), max_new_tokens=40, do_sample=False)[0, len(ids) :].tolist()
    assert generated[-1] == tokenizer.eos_token_id and len(generated) < 40  # it ends by itself
    choice = answer["choices"][0]
    assert choice["message"]["content"] == tokenizer.decode(generated, skip_special_tokens=True)
    assert choice["finish_reason"] == "stop" and "<|im_end|>" not in choice["message"]["content"]
    assert answer["usage"] == {
        "prompt_tokens": len(ids),
        "completion_tokens": len(generated),
        "total_tokens": len(ids) + len(generated),
    }
    content = choice["logprobs"]["content"]
    assert [e["bytes"] for e in content] == [list(ref.piece_bytes(tokenizer, i)) for i in generated]
    assert [e["token"] for e in content] == [tokenizer.decode([i]) for i in generated]  # EOS listed last
    expected = ref.position_logprobs(model, ids + generated, len(ids))
    np.testing.assert_allclose([e["logprob"] for e in content], expected, atol=2e-3)
    first = ref.next_logprobs(model, ids)  # the first answer token's top 20, by hand
    best = first.topk(40)
    by_bytes = {ref.piece_bytes(tokenizer, int(i)): float(v) for i, v in zip(best.indices, best.values, strict=True)}
    top = content[0]["top_logprobs"]
    assert len(top) == 20 and [e["logprob"] for e in top] == sorted((e["logprob"] for e in top), reverse=True)
    for entry in top:
        assert entry["logprob"] == pytest.approx(by_bytes[bytes(entry["bytes"])], abs=2e-3), entry
    np.testing.assert_allclose([e["logprob"] for e in top], best.values[:20].numpy(), atol=2e-3)


def test_chat_bytes_stop_strings_and_length(http):
    model = packaged("smollm2-135m")
    messages = [{"role": "user", "content": "你好，北京是哪个国家的首都？"}]
    answer = http.post("/v1/chat/completions", json={"messages": messages, "max_tokens": 8, "logprobs": True}).json()
    ids = ref.chat_ids(model.tokenizer, messages)
    generated = model.model.generate(torch.tensor([ids]), max_new_tokens=8, do_sample=False)[0, len(ids) :].tolist()
    choice = answer["choices"][0]
    assert choice["finish_reason"] == "length" and choice["message"]["content"] == model.tokenizer.decode(generated)
    content = choice["logprobs"]["content"]
    joined = b"".join(bytes(e["bytes"]) for e in content)  # ends inside a character: the 8th token is a byte piece
    assert (
        joined.decode("utf-8", "replace") == choice["message"]["content"]
        and choice["message"]["content"][-1] == "\ufffd"
    )
    assert any("\ufffd" in e["token"] for e in content) and all(e["top_logprobs"] == [] for e in content)
    body = {"messages": [{"role": "user", "content": QUESTION}], "max_tokens": 20, "stop": [" is", "zzz"]}
    stopped = http.post("/v1/chat/completions", json=body).json()["choices"][0]
    assert stopped["message"]["content"] == "The capital of France" and stopped["finish_reason"] == "stop"
    assert stopped["logprobs"] is None


@pytest.fixture(scope="module")
def chat_occlusion(served_smollm2: str) -> dict[str, Any]:
    """Occlusion of the word units of QUESTION and FRAGILE through the chat endpoint, black box (no
    local model: units from the text, the target asked from the endpoint)."""
    scorer = OpenAIChatScorer(served_smollm2, api_key_env=KEY_ENV)
    return {text: attribute(None, text, "occlusion", granularity="word", scorer=scorer) for text in (QUESTION, FRAGILE)}


def test_chat_scorer_occlusion_equals_occlusion_by_hand(chat_occlusion):
    model = packaged("smollm2-135m")
    result = chat_occlusion[QUESTION]
    expected = ref.chat_occlusion(model, QUESTION)
    assert result.target["text"] == expected["target"] == "The"
    assert [u.text for u in result.units] == [word for word, _ in ref.words_removed(QUESTION)]
    assert expected["bounded"] == [] and "bounded_units" not in result.details
    np.testing.assert_allclose(result.scores, expected["scores"], atol=2e-3)
    assert result.details["base_logprob"] == pytest.approx(expected["base"], abs=2e-3)
    assert result.details["scorer"] == "OpenAIChatScorer" and "answer's first" in OpenAIChatScorer.targets


def test_chat_scorer_bounds_a_target_that_leaves_the_top_20(chat_occlusion):
    model = packaged("smollm2-135m")
    result = chat_occlusion[FRAGILE]
    expected = ref.chat_occlusion(model, FRAGILE)
    assert expected["bounded"] and result.details["bounded_units"] == expected["bounded"]
    np.testing.assert_allclose(result.scores, expected["scores"], atol=2e-3)
    for index in expected["bounded"]:  # a bounded score is a lower bound of the true drop
        assert result.scores[index] <= expected["drops"][index] + 2e-3


def test_http_scorer_gives_the_in_process_occlusion_scores(served_smollm2):
    model = packaged("smollm2-135m")
    local = attribute(model, ENGLISH, "occlusion", granularity="word")
    scorer = OpenAICompletionsScorer(served_smollm2, api_key_env=KEY_ENV)
    remote = attribute(model, ENGLISH, "occlusion", granularity="word", scorer=scorer)
    assert remote.details["scorer"] == "OpenAICompletionsScorer"
    np.testing.assert_allclose(remote.scores, local.scores, atol=2e-3)
    assert remote.details["base_logprob"] == pytest.approx(local.details["base_logprob"], abs=1e-3)
    scorer = OpenAICompletionsScorer(served_smollm2 + "/v1", api_key_env=KEY_ENV)
    tokens = attribute(model, ENGLISH, "occlusion", scorer=scorer)
    np.testing.assert_allclose(tokens.scores, attribute(model, ENGLISH, "occlusion").scores, atol=2e-3, equal_nan=True)
    black_box = attribute(None, ENGLISH, "occlusion", granularity="word", scorer=scorer)  # units from the text
    assert black_box.target["text"] == local.target["text"] == " Paris"  # asked from the endpoint
    assert [u.text for u in black_box.units] == [u.text for u in local.units]
    np.testing.assert_allclose(black_box.scores, local.scores, atol=2e-3)


def test_completions_scorer_next_token_is_a_whole_character(served_smollm2):
    model = packaged("smollm2-135m")
    text = "我喜欢吃"  # SmolLM2's next token is the first byte piece of a character
    ids = model.tokenizer(text)["input_ids"]
    generated = model.model.generate(torch.tensor([ids]), max_new_tokens=4, do_sample=False)[0, len(ids) :].tolist()
    pieces = [model.tokenizer.decode(generated[:n]) for n in range(1, 5)]
    assert pieces[0] == "\ufffd"
    scorer = OpenAICompletionsScorer(served_smollm2, api_key_env=KEY_ENV)
    black_box = attribute(None, text, "occlusion", granularity="word", scorer=scorer)
    target = black_box.target["text"]
    assert target == next(p for p in pieces if not p.endswith("\ufffd")), (target, pieces)
    local = attribute(model, text, "occlusion", granularity="word", target=target)
    assert [u.text for u in black_box.units] == [u.text for u in local.units]
    np.testing.assert_allclose(black_box.scores, local.scores, atol=2e-3)


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "attnscope.cli", "attribute", *args, "--method", "occlusion", "--json", "-q"]
    return subprocess.run(command, capture_output=True, text=True, env=env or dict(os.environ), timeout=300)


def test_cli_occlusion_through_the_endpoint(served_smollm2):
    completed = cli(
        ENGLISH,
        "-m",
        "smollm2-135m",
        "--granularity",
        "word",
        "--scorer-url",
        served_smollm2,
        "--scorer-api-key-env",
        KEY_ENV,
    )
    assert completed.returncode == 0, completed.stderr
    body = json.loads(completed.stdout)
    local = attribute(packaged("smollm2-135m"), ENGLISH, "occlusion", granularity="word")
    np.testing.assert_allclose(body["scores"], local.scores, atol=2e-3)
    assert body["target"]["text"] == " Paris" and body["target"]["ids"] == local.target["ids"]


def test_cli_chat_scorer_prints_the_library_scores(served_smollm2, chat_occlusion):
    options = ["--granularity", "word", "--scorer-url", served_smollm2, "--scorer-api", "chat"]
    completed = cli(FRAGILE, *options, "--scorer-api-key-env", KEY_ENV)
    assert completed.returncode == 0, completed.stderr
    body = json.loads(completed.stdout)
    library = chat_occlusion[FRAGILE]
    np.testing.assert_allclose(body["scores"], library.scores, atol=1e-6)
    assert body["target"]["text"] == library.target["text"] == "En"
    assert body["details"]["bounded_units"] == library.details["bounded_units"]


def test_api_key_is_required_and_read_from_a_named_variable(served_smollm2):
    chat = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}
    for path, body in (("/v1/chat/completions", chat), ("/v1/completions", {"prompt": "hi", "max_tokens": 1})):
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": os.environ[KEY_ENV]}):
            response = httpx.post(served_smollm2 + path, json=body, headers=headers, timeout=TIMEOUT)
            assert response.status_code == 401 and response.json()["code"] == "unauthorized", response.text
            assert set(response.json()) == {"detail", "code"}
    with pytest.raises(AttnscopeError, match="answered 401"):
        OpenAIChatScorer(served_smollm2).next_token("hi")  # no key sent
    assert OpenAIChatScorer(served_smollm2, api_key_env=KEY_ENV).next_token(QUESTION) == "The"
    os.environ.pop(UNSET_ENV, None)
    for kind in (OpenAIChatScorer, OpenAICompletionsScorer):
        with pytest.raises(InputError, match=UNSET_ENV) as error:
            kind(served_smollm2, api_key_env=UNSET_ENV)
        assert "\n" not in str(error.value)
    completed = cli(
        QUESTION,
        "--granularity",
        "word",
        "--scorer-url",
        served_smollm2,
        "--scorer-api",
        "chat",
        "--scorer-api-key-env",
        UNSET_ENV,
    )
    assert completed.returncode == 2 and completed.stdout == ""
    assert completed.stderr.count("\n") == 1 and UNSET_ENV in completed.stderr, completed.stderr


LONG_PROMPT = "word " * 9000  # about 9,000 tokens: over SmolLM2's 8,192
USER = [{"role": "user", "content": "hi"}]
BAD_CHAT: list[tuple[Any, ...]] = [
    ("nan-temperature", b'{"messages": [{"role": "user", "content": "hi"}], "temperature": NaN}', 422),
    ("max-tokens-0", {"messages": USER, "max_tokens": 0}, 422),
    ("max-tokens-300", {"messages": USER, "max_tokens": 300}, 422),
    ("max-tokens-text", {"messages": USER, "max_tokens": "x"}, 422),
    ("top-logprobs-21", {"messages": USER, "logprobs": True, "top_logprobs": 21}, 422),
    ("no-messages", {"messages": []}, 422),
    ("unknown-role", {"messages": [{"role": "robot", "content": "hi"}]}, 422),
    ("content-not-text", {"messages": [{"role": "user", "content": ["hi"]}]}, 422),
    ("surrogate", b'{"messages": [{"role": "user", "content": "\\ud800"}]}', 422),
    ("nan-anywhere", b'{"messages": [{"role": "user", "content": "hi"}], "top_p": NaN}', 422),
    ("unknown-field", {"messages": USER, "tools": []}, 422),
    ("malformed", b'{"messages": [', 422),
    ("too-long", {"messages": [{"role": "user", "content": LONG_PROMPT}], "max_tokens": 1}, 400, "too_long"),
    ("sampling", {"messages": USER, "temperature": 0.7}, 400),
    ("streaming", {"messages": USER, "stream": True}, 400),
    ("n-2", {"messages": USER, "n": 2}, 422),
    ("empty-stop", {"messages": USER, "stop": [""]}, 422),
]
BAD_COMPLETIONS: list[tuple[Any, ...]] = [
    ("nan-temperature", b'{"prompt": "hi", "temperature": NaN}', 422),
    ("inf-temperature", b'{"prompt": "hi", "temperature": Infinity}', 422),
    ("max-tokens-300", {"prompt": "hi", "max_tokens": 300}, 422),
    ("max-tokens-text", {"prompt": "hi", "max_tokens": "x"}, 422),
    ("logprobs-21", {"prompt": "hi", "logprobs": 21}, 422),
    ("empty-prompt", {"prompt": ""}, 422),
    ("surrogate", b'{"prompt": "\\ud800"}', 422),
    ("too-long", {"prompt": LONG_PROMPT, "max_tokens": 0}, 400, "too_long"),
    ("no-prompts", {"prompt": []}, 400),
    ("sampling", {"prompt": "hi", "temperature": 1}, 400),
]


def _cases(path: str, cases: list[tuple[Any, ...]]) -> list[Any]:
    """(name, body, status[, code]): a bytes body is sent as is (NaN, lone surrogates, broken JSON)."""
    return [pytest.param(path, c[1], c[2], c[3] if len(c) > 3 else None, id=c[0]) for c in cases]


@pytest.mark.parametrize(
    ("path", "body", "status", "code"),
    _cases("/v1/chat/completions", BAD_CHAT) + _cases("/v1/completions", BAD_COMPLETIONS),
)
def test_bad_requests_are_refused_in_one_shape(http, path, body, status, code):
    if isinstance(body, bytes):
        response = http.post(path, content=body, headers={"Content-Type": "application/json"})
    else:
        response = http.post(path, json=body)
    assert response.status_code == status, response.text[:300]
    answer = response.json()
    assert set(answer) == {"detail", "code"} and "\n" not in answer["detail"], answer
    assert answer["code"] == (code or ("invalid_request" if status == 422 else "bad_input")), answer
    if code == "too_long":
        assert "8,192" in answer["detail"], answer
    normal = http.post("/v1/chat/completions", json={"messages": USER, "max_tokens": 1})
    assert normal.status_code == 200 and normal.json()["choices"][0]["finish_reason"] in ("stop", "length")


def test_unreachable_endpoint_is_a_clear_error():
    scorer = OpenAICompletionsScorer(f"http://127.0.0.1:{free_port()}")
    with pytest.raises(AttnscopeError, match="cannot reach"):
        scorer.score(["a"], " b")
