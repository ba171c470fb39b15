"""A corpus of bad inputs for every HTTP route and every CLI command: each is refused clearly and changes nothing.

Server: one real uvicorn server on 127.0.0.1 (tiny:qwen2, 256-token context) for the whole module. Every
refusal is the expected 4xx with exactly ``{"detail": <one line>, "code": <str>}``; after every case the
server still has its model, and after the corpus a fresh analysis equals ``capture`` number for number.
Control characters are not bad input: they are analysed, and checked against the library.
CLI: ``attnscope.cli.main`` in-process (one ``error:`` line on stderr, exit 2, nothing on stdout), and a
few real ``python -m attnscope`` processes to prove that no traceback reaches a user.

Cases whose id starts with ``v1-`` are for the OpenAI-compatible ``/v1/*`` routes; ``models-*``
are the ``attnscope models`` command's.
"""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from attnscope.capture import capture
from attnscope.cli.main import main
from attnscope.server.host import ModelHost
from tests.conftest import CHINESE, ENGLISH, tiny
from tests.server.conftest import loader
from tests.server.test_load import free_port, running_server

SPEC = "tiny:qwen2"
CONTROL = "tab\there\x00nul\x07bell\x1b[31mred\x1b[0m\x7fdel\r\nline\x0bvt\x0cff\u200bzw\u202eRTL"
LONG = "w " * 400  # about 400 tokens: over tiny:qwen2's 256-token context
HUGE = "a" * 1_000_001  # one character over the text-size limit


def refused(response: httpx.Response, status: int, code: str | None) -> None:
    """``status`` with exactly ``{"detail": one line, "code": code}`` and no stack trace."""
    assert response.status_code == status, (response.status_code, response.text[:300])
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body = response.json()
    assert set(body) == {"detail", "code"}, body
    assert isinstance(body["detail"], str) and isinstance(body["code"], str), body
    assert body["detail"].strip() and "\n" not in body["detail"] and "\r" not in body["detail"], body
    assert "Traceback" not in response.text and 'File "' not in response.text, body
    if code is not None:
        assert body["code"] == code, body


# --- the server -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Paths that are not models: an empty folder, a .gguf that is not GGUF, a text file."""
    root = tmp_path_factory.mktemp("specs")
    (root / "empty").mkdir()
    (root / "fake.gguf").write_bytes(b"this is not a GGUF file\n" * 4)
    (root / "notes.txt").write_text("not a model\n")
    broken = root / "broken"
    broken.mkdir()
    (broken / "config.json").write_text('{"model_type": "llama", "num_hidden_layers": "many"}')
    (broken / "model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    return {
        "empty": str(root / "empty"),
        "gguf": str(root / "fake.gguf"),
        "txt": str(root / "notes.txt"),
        "broken": str(broken),
    }


@pytest.fixture(scope="module")
def server() -> Iterator[httpx.Client]:
    host = ModelHost(loader=loader)
    host.load(SPEC)
    with running_server(host) as base, httpx.Client(base_url=base, timeout=httpx.Timeout(60, connect=10)) as http:
        yield http


@pytest.fixture(scope="module")
def trace_id(server: httpx.Client) -> str:
    response = server.post("/api/analyze", json={"text": ENGLISH})
    assert response.status_code == 200, response.text
    return str(response.json()["trace_id"])


def _fill(value: Any, names: dict[str, str]) -> Any:
    """``"{name}"`` strings in a body replaced by the fixture's paths."""
    if isinstance(value, str) and value.startswith("{") and value.endswith("}") and value[1:-1] in names:
        return names[value[1:-1]]
    if isinstance(value, dict):
        return {key: _fill(item, names) for key, item in value.items()}
    if isinstance(value, list):
        return [_fill(item, names) for item in value]
    return value


DEFAULT_CODES = {
    404: "not_found",
    405: "method_not_allowed",
    409: "cancelled",
    413: "too_large",
    422: "invalid_request",
}


def case(name: str, method: str, path: str, body: Any, status: int, code: str | None = None, *marks: Any) -> Any:
    return pytest.param(method, path, body, status, code or DEFAULT_CODES[status], id=name, marks=marks)


def raw(text: str | bytes) -> bytes:
    """A body sent as is, labelled JSON (malformed JSON, NaN, invalid UTF-8, lone surrogates)."""
    return text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text


def poster(route: str, base: dict[str, Any] | None = None) -> Any:
    """Cases for POST ``route``; a dict body is merged over ``base``."""

    def make(name: str, body: Any, status: int, code: str | None = None, *marks: Any) -> Any:
        if isinstance(body, dict) and base is not None:
            body = {**base, **body}
        return case(name, "POST", route, body, status, code, *marks)

    return make


def getter(name: str, path: str, status: int, code: str | None = None, *marks: Any) -> Any:
    return case(name, "GET", path, None, status, code, *marks)


T = {"text": ENGLISH}
M = "/api/traces/{trace}"
RANGE, LONG_CODE, INPUT, LOAD = "out_of_range", "too_long", "bad_input", "model_load_failed"
model = poster("/api/model")
analyze = poster("/api/analyze", T)
attribute = poster("/api/attribute", T)
ig = poster("/api/attribute", {**T, "method": "integrated-gradients"})
agreement = poster("/api/agreement", T)
heads = poster("/api/heads", T)
parts = poster("/api/parts", {**T, "parts": [{"name": "a", "start": 0, "end": 3}]})
compare = poster("/api/compare")
completions = poster("/v1/completions")
chat = poster("/v1/chat/completions")


P1 = [{"name": "a", "start": 0, "end": 3}]
SERVER_CASES = [
    # /api/model, /api/models, /api/methods
    case("model-delete", "DELETE", "/api/model", None, 405),
    case("model-put", "PUT", "/api/model", {"spec": SPEC}, 405),
    model("model-empty-spec", {"spec": ""}, 422),
    model("model-blank-spec", {"spec": " \t\n"}, 422),
    model("model-no-spec", {}, 422),
    model("model-spec-number", {"spec": 5}, 422),
    model("model-spec-null", {"spec": None}, 422),
    model("model-spec-list", {"spec": [SPEC]}, 422),
    model("model-spec-unknown-field", {"spec": SPEC, "force": True}, 422),
    model("model-spec-too-long", {"spec": "m" * 501}, 422),
    model("model-spec-surrogate", raw('{"spec": "\\ud800"}'), 422),
    model("model-malformed-json", raw('{"spec": '), 422),
    model("model-unknown", {"spec": "no-such-model"}, 404, "model_not_found"),
    model("model-unknown-tiny", {"spec": "tiny:nope"}, 404, "model_not_found"),
    model("model-etc-passwd", {"spec": "../../etc/passwd"}, 404, "model_not_found"),
    model("model-dev-null", {"spec": "/dev/null"}, 404, "model_not_found"),
    model("model-missing-path", {"spec": "/no/such/folder"}, 404, "model_not_found"),
    model("model-text-file", {"spec": "{txt}"}, 404, "model_not_found"),
    model("model-empty-folder", {"spec": "{empty}"}, 400, LOAD),
    model("model-fake-gguf", {"spec": "{gguf}"}, 400, LOAD),
    model("model-broken-folder", {"spec": "{broken}"}, 400, LOAD),
    model("model-home", {"spec": "~"}, 400, LOAD),
    case("models-post", "POST", "/api/models", {}, 405),
    case("methods-delete", "DELETE", "/api/methods", None, 405),
    # /api/analyze: texts and bodies
    getter("analyze-get", "/api/analyze", 405),
    analyze("analyze-empty", {"text": ""}, 422),
    analyze("analyze-spaces", {"text": "   "}, 422),
    analyze("analyze-whitespace", {"text": "\n\t \u3000\n"}, 422),
    analyze("analyze-huge", {"text": HUGE}, 422),
    analyze("analyze-over-context", {"text": LONG}, 400, LONG_CODE),
    analyze("analyze-chinese-over-context", {"text": "北京上海" * 100}, 400, LONG_CODE),
    analyze("analyze-surrogate", raw('{"text": "a\\ud800b"}'), 422),
    analyze("analyze-low-surrogate", raw('{"text": "\\udfff"}'), 422),
    analyze("analyze-invalid-utf8", raw(b'{"text": "\xff\xfe"}'), 422),
    analyze("analyze-not-utf8-body", raw(b"\xff\xfe not json"), 422),
    analyze("analyze-malformed", raw('{"text": "hi",}'), 422),
    analyze("analyze-truncated", raw('{"text": "hi"'), 422),
    analyze("analyze-no-body", None, 422),
    analyze("analyze-empty-body", raw(b""), 422),
    analyze("analyze-list-body", raw("[]"), 422),
    analyze("analyze-string-body", raw('"hello"'), 422),
    analyze("analyze-text-number", {"text": 5}, 422),
    analyze("analyze-text-null", {"text": None}, 422),
    analyze("analyze-text-list", {"text": ["a", "b"]}, 422),
    analyze("analyze-text-object", {"text": {"a": 1}}, 422),
    analyze("analyze-unknown-field", {"colour": "red"}, 422),
    analyze("analyze-misspelt-field", {"topk": 3}, 422),
    # /api/analyze: numbers and names
    analyze("analyze-nan", raw('{"text": "hi", "top_k": NaN}'), 422),
    analyze("analyze-infinity", raw('{"text": "hi", "layer": Infinity}'), 422),
    analyze("analyze-minus-infinity", raw('{"text": "hi", "query": -Infinity}'), 422),
    analyze("analyze-layer-float", {"layer": 1.5}, 422),
    analyze("analyze-layer-bool", {"layer": True}, 422),
    analyze("analyze-layer-null", {"layer": None}, 422),
    analyze("analyze-layer-word", {"layer": "top"}, 422),
    analyze("analyze-layer-out", {"layer": 9}, 400, RANGE),
    analyze("analyze-layer-negative", {"layer": -99}, 400, RANGE),
    analyze("analyze-layer-huge", {"layer": 10**30}, 400, RANGE),
    analyze("analyze-layer-text-out", {"layer": "9"}, 400, RANGE),
    analyze("analyze-layer-range-out", {"layer": "0-9"}, 400, RANGE),
    analyze("analyze-layer-range-empty", {"layer": "1-0"}, 400, RANGE),
    analyze("analyze-head-out", {"head": 99}, 400, RANGE),
    analyze("analyze-head-word", {"head": "median"}, 422),
    analyze("analyze-head-all", {"head": "all"}, 400, INPUT),
    analyze("analyze-head-empty-list", {"head": []}, 422),
    analyze("analyze-head-list-out", {"head": [0, 99]}, 400, RANGE),
    analyze("analyze-head-list-strings", {"head": ["0", "1"]}, 422),
    analyze("analyze-query-out", {"query": 50}, 400, RANGE),
    analyze("analyze-query-negative", {"query": -50}, 400, RANGE),
    analyze("analyze-query-string", {"query": "1"}, 422),
    analyze("analyze-top-k-zero", {"top_k": 0}, 422),
    analyze("analyze-top-k-big", {"top_k": 101}, 422),
    analyze("analyze-top-k-string", {"top_k": "5"}, 422),
    analyze("analyze-top-k-list", {"top_k": [5]}, 422),
    analyze("analyze-backend", {"backend": "fast"}, 422),
    analyze("analyze-stack-unknown", {"stack": "middle"}, 422),
    analyze("analyze-stack-cross", {"stack": "cross"}, 400, RANGE),
    analyze("analyze-stack-encoder", {"stack": "encoder"}, 400, RANGE),
    analyze("analyze-progress-id-path", {"progress_id": "../x"}, 422),
    analyze("analyze-progress-id-number", {"progress_id": 5}, 422),
    analyze("analyze-include-tokens", {"include_tokens": "yes"}, 422),
    # /api/attribute
    getter("attribute-get", "/api/attribute", 405),
    attribute("attribute-no-method", {}, 422),
    attribute("attribute-unknown-method", {"method": "magic"}, 422),
    attribute("attribute-method-number", {"method": 5}, 422),
    attribute("attribute-not-scoring", {"method": "heads"}, 422),
    attribute("attribute-empty", {"text": "", "method": "occlusion"}, 422),
    attribute("attribute-blank", {"text": " \n ", "method": "grad-norm"}, 422),
    attribute("attribute-granularity", {"method": "grad-norm", "granularity": "letter"}, 422),
    attribute("attribute-objective", {"method": "grad-norm", "objective": "max"}, 422),
    attribute("attribute-query-out", {"method": "grad-norm", "query": 99}, 400, RANGE),
    attribute("attribute-query-text", {"method": "grad-norm", "query": "x"}, 422),
    attribute("attribute-target-empty", {"method": "occlusion", "target": ""}, 422),
    attribute("attribute-target-surrogate", raw('{"text": "hi", "method": "occlusion", "target": "\\ud800"}'), 422),
    attribute("attribute-options-list", {"method": "occlusion", "options": ["mode"]}, 422),
    attribute("attribute-mode", {"method": "occlusion", "options": {"mode": "erase"}}, 422),
    attribute("attribute-option-unknown", {"method": "grad-norm", "options": {"steps": 4}}, 422),
    attribute("attribute-layers-out", {"method": "attention", "options": {"layers": "0-9"}}, 400, RANGE),
    attribute("attribute-heads-word", {"method": "attention", "options": {"heads": "median"}}, 422),
    attribute("attribute-over-context", {"text": LONG, "method": "occlusion"}, 400, LONG_CODE),
    attribute("attribute-flow-over-context", {"text": LONG, "method": "flow"}, 400, LONG_CODE),
    ig("attribute-steps-zero", {"options": {"steps": 0}}, 422),
    ig("attribute-steps-word", {"options": {"steps": "many"}}, 422),
    ig("attribute-steps-float", {"options": {"steps": 2.5}}, 422),
    ig("attribute-steps-huge", {"options": {"steps": 10**9}}, 422),
    ig("attribute-steps-nan", raw('{"text": "hi", "method": "integrated-gradients", "options": {"steps": NaN}}'), 422),
    # /api/agreement
    agreement("agreement-one-method", {"methods": ["attention"]}, 422),
    agreement("agreement-unknown-method", {"methods": ["attention", "magic"]}, 422),
    agreement("agreement-methods-string", {"methods": "attention,occlusion"}, 422),
    agreement("agreement-granularity", {"granularity": 5}, 422),
    agreement("agreement-same-method-twice", {"methods": ["occlusion", "occlusion"]}, 422),
    agreement("agreement-option-bad", {"options": {"steps": -1}}, 422),
    agreement("agreement-option-unknown", {"options": {"colour": 1}}, 422),
    agreement("agreement-empty", {"text": ""}, 422),
    agreement("agreement-over-context", {"text": LONG}, 400, LONG_CODE),
    # /api/heads
    heads("heads-threshold-big", {"threshold": 2}, 422),
    heads("heads-threshold-negative", {"threshold": -0.1}, 422),
    heads("heads-threshold-string", {"threshold": "0.5"}, 422),
    heads("heads-threshold-nan", raw('{"text": "hi", "threshold": NaN}'), 422),
    heads("heads-backend", {"backend": "slow"}, 422),
    heads("heads-stack-cross", {"stack": "cross"}, 400, RANGE),
    heads("heads-blank", {"text": "\n\n"}, 422),
    heads("heads-over-context", {"text": LONG}, 400, LONG_CODE),
    # /api/parts
    case("parts-missing", "POST", "/api/parts", T, 422),
    parts("parts-null", {"parts": None}, 422),
    parts("parts-empty", {"parts": []}, 422),
    parts("parts-string", {"parts": "all"}, 422),
    parts("parts-reversed", {"parts": [{"name": "a", "start": 5, "end": 2}]}, 422),
    parts("parts-negative", {"parts": [{"name": "a", "start": -1, "end": 2}]}, 422),
    parts("parts-outside", {"parts": [{"name": "a", "start": 3, "end": 500}]}, 400, RANGE),
    parts("parts-no-name", {"parts": [{"name": "", "start": 0, "end": 3}]}, 422),
    parts("parts-extra-field", {"parts": [{"name": "a", "start": 0, "end": 3, "x": 1}]}, 422),
    parts("parts-start-string", {"parts": [{"name": "a", "start": "0", "end": 3}]}, 422),
    parts("parts-duplicate", {"parts": [*P1, {"name": "a", "start": 4, "end": 8}]}, 422),
    parts("parts-too-many", {"parts": [{"name": f"p{i}", "start": 0, "end": 1} for i in range(51)]}, 422),
    parts("parts-query-name", {"query": "b"}, 400, INPUT),
    parts("parts-query-out", {"query": 99}, 400, RANGE),
    parts("parts-query-float", {"query": 1.5}, 422),
    parts("parts-over-context", {"text": LONG}, 400, LONG_CODE),
    # /api/compare
    compare("compare-no-texts", {"texts": []}, 422),
    compare("compare-text-field", {"text": ENGLISH}, 422),
    compare("compare-empty-text", {"texts": [ENGLISH, ""]}, 422),
    compare("compare-blank-text", {"texts": [ENGLISH, "  "]}, 422),
    compare("compare-number", {"texts": [ENGLISH, 5]}, 422),
    compare("compare-string", {"texts": ENGLISH}, 422),
    compare("compare-nine", {"texts": [f"text {i}" for i in range(9)]}, 422),
    compare("compare-surrogate", raw('{"texts": ["a", "\\ud800"]}'), 422),
    compare("compare-layer-out", {"texts": [ENGLISH, CHINESE], "layer": 99}, 400, RANGE),
    compare("compare-layer-out-one-text", {"texts": [ENGLISH], "layer": 99}, 400, RANGE),
    compare("compare-head-out-three", {"texts": ["a b", "c d", "e f"], "head": 99}, 400, RANGE),
    compare("compare-head-word", {"texts": [ENGLISH, CHINESE], "head": "median"}, 422),
    compare("compare-head-all", {"texts": [ENGLISH, CHINESE], "head": "all"}, 400, INPUT),
    compare("compare-granularity", {"texts": [ENGLISH], "granularity": "page"}, 422),
    compare("compare-over-context", {"texts": [ENGLISH, LONG]}, 400, LONG_CODE),
    # jobs and progress
    getter("progress-bad-id", "/api/progress/bad id!", 422),
    getter("progress-long-id", "/api/progress/" + "j" * 65, 422),
    case("progress-post", "POST", "/api/progress/job-x", None, 405),
    getter("job-bad-id", "/api/jobs/a.b", 422),
    case("job-post", "POST", "/api/jobs/job-x", None, 405),
    getter("cancel-get", "/api/jobs/job-x/cancel", 405),
    case("cancel-bad-id", "POST", "/api/jobs/a%20b/cancel", None, 422),
    # binary arrays of a trace
    getter("row-unknown-trace", "/api/traces/0123456789abcdef/row", 404),
    getter("grid-unknown-trace", "/api/traces/nope/grid", 404),
    getter("matrix-unknown-trace", "/api/traces/nope/matrix", 404),
    getter("pyramid-unknown-trace", "/api/traces/nope/pyramid", 404),
    getter("tile-unknown-trace", "/api/traces/nope/tile?level=0&ty=0&tx=0", 404),
    case("row-post", "POST", M + "/row", None, 405),
    getter("row-layer-out", M + "/row?layer=9", 400, RANGE),
    getter("row-layer-word", M + "/row?layer=top", 422),
    getter("row-layer-float", M + "/row?layer=1.5", 422),
    getter("row-layer-nan", M + "/row?layer=nan", 422),
    getter("row-head-out", M + "/row?head=99", 400, RANGE),
    getter("row-head-word", M + "/row?head=median", 422),
    getter("row-query-out", M + "/row?query=99", 400, RANGE),
    getter("row-query-huge", M + "/row?query=99999999999999999999999", 400, RANGE),
    getter("row-stack", M + "/row?stack=cross", 400, RANGE),
    getter("row-stack-unknown", M + "/row?stack=middle", 422),
    getter("row-unknown-param", M + "/row?colour=red", 422),
    getter("grid-query-out", M + "/grid?query=-99", 400, RANGE),
    getter("grid-query-inf", M + "/grid?query=inf", 422),
    getter("matrix-encoding", M + "/matrix?encoding=png", 422),
    getter("matrix-head-all", M + "/matrix?head=all", 400, INPUT),
    getter("matrix-layer-out", M + "/matrix?layer=-9", 400, RANGE),
    getter("pyramid-head-all", M + "/pyramid?head=all", 400, INPUT),
    getter("pyramid-layer-out", M + "/pyramid?layer=9", 400, RANGE),
    getter("pyramid-head-out", M + "/pyramid?head=3,99", 400, RANGE),
    getter("tile-no-level", M + "/tile?ty=0&tx=0", 422),
    getter("tile-level-negative", M + "/tile?level=-1&ty=0&tx=0", 422),
    getter("tile-level-huge", M + "/tile?level=65&ty=0&tx=0", 422),
    getter("tile-level-beyond", M + "/tile?level=5&ty=0&tx=0", 400, RANGE),
    getter("tile-ty-beyond", M + "/tile?level=0&ty=3&tx=0", 400, RANGE),
    getter("tile-tx-beyond", M + "/tile?level=0&ty=0&tx=99999", 400, RANGE),
    getter("tile-tx-negative", M + "/tile?level=0&ty=0&tx=-1", 422),
    getter("tile-ty-word", M + "/tile?level=0&ty=top&tx=0", 422),
    getter("trace-unknown-view", M + "/image", 404),
    # unknown routes
    getter("route-unknown", "/api/nowhere", 404),
    getter("route-api-root", "/api", 404),
    getter("route-static-escape", "/static/..%2F..%2F..%2Fetc%2Fpasswd", 404),
    getter("route-static-missing", "/static/nothing.js", 404),
    # OpenAI-compatible routes
    getter("v1-completions-get", "/v1/completions", 405),
    completions("v1-completions-empty", {"prompt": ""}, 422),
    completions("v1-completions-surrogate", raw('{"prompt": "\\ud800"}'), 422),
    completions("v1-completions-max-tokens", {"prompt": "hi", "max_tokens": -1}, 422),
    completions("v1-completions-nan", raw('{"prompt": "hi", "temperature": NaN}'), 422),
    completions("v1-completions-malformed", raw('{"prompt": '), 422),
    completions("v1-completions-over-context", {"prompt": LONG, "max_tokens": 0}, 400, LONG_CODE),
    completions("v1-completions-no-prompts", {"prompt": []}, 400, INPUT),
    chat("v1-chat-no-messages", {"messages": []}, 422),
    chat("v1-chat-role", {"messages": [{"role": "robot", "content": "hi"}]}, 422),
    chat("v1-chat-string", {"messages": "hi"}, 422),
]


@pytest.mark.parametrize(("method", "path", "body", "status", "code"), SERVER_CASES)
def test_server_refuses(server, trace_id, files, method, path, body, status, code):
    names = {"trace": trace_id, **files}
    path = path.format(**names)
    if isinstance(body, bytes):
        response = server.request(method, path, content=body, headers={"content-type": "application/json"})
    elif body is None:
        response = server.request(method, path)
    else:
        response = server.request(method, path, json=_fill(body, names))
    refused(response, status, code)
    model = server.get("/api/model").json()
    assert model["status"] == "ready" and model["model"]["spec"] == SPEC, model


def test_bodies_over_8_mb_are_refused_declared_or_chunked(server):
    big = b'{"text": "' + b"a" * 8_100_000 + b'"}'
    for path in ("/api/analyze", "/api/model", "/v1/completions"):
        refused(server.post(path, content=big, headers={"content-type": "application/json"}), 413, "too_large")
    chunks = (b"a" * 1_000_000 for _ in range(9))  # no content-length: transfer-encoding chunked
    refused(server.post("/api/analyze", content=chunks, headers={"content-type": "application/json"}), 413, "too_large")
    url = httpx.URL(str(server.base_url))
    for declared in (b"abc", b"-5", b"99999999999999999999"):  # lying or unreadable content-length
        with socket.create_connection((url.host, url.port), timeout=10) as sock:
            sock.sendall(b"POST /api/analyze HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n")
            sock.sendall(b"content-length: " + declared + b"\r\nconnection: close\r\n\r\n{}")
            answer = sock.recv(65536).decode("latin-1")
        assert answer.split(" ")[1] in ("400", "413"), answer[:300]
        assert "Traceback" not in answer


def test_a_cancelled_job_answers_409_and_the_next_one_runs(server):
    assert server.post("/api/jobs/cancel-me/cancel").json()["cancelled"] is True
    body = {"text": "a text nobody has analysed yet", "progress_id": "cancel-me"}
    refused(server.post("/api/analyze", json=body), 409, "cancelled")
    assert server.post("/api/jobs/cancel-too/cancel").status_code == 200
    body = {"text": ENGLISH, "method": "occlusion", "progress_id": "cancel-too"}
    refused(server.post("/api/attribute", json=body), 409, "cancelled")
    assert server.post("/api/analyze", json={"text": "a text nobody has analysed yet"}).status_code == 200


def test_unknown_progress_and_job_ids_answer_without_hanging(server):
    assert server.get("/api/jobs/never-started").json()["finished"] is False
    started = time.monotonic()
    with server.stream("GET", "/api/progress/never-started", timeout=10) as stream:
        first = next(stream.iter_lines())
    assert first.startswith("data: ") and time.monotonic() - started < 5


@pytest.mark.parametrize("text", [CONTROL, "\x00", "\x1b[2J\x1b[H", "a\u0000b\u0001c\u001fd", "line\r\nline\rline"])
def test_control_characters_are_analysed_not_refused(server, text):
    response = server.post("/api/analyze", json={"text": text, "layer": 1, "head": 0})
    assert response.status_code == 200, response.text
    body = response.json()
    trace = capture(tiny("qwen2"), text)
    assert body["text"] == text and [t["id"] for t in body["tokens"]] == [t.id for t in trace.tokens]
    np.testing.assert_allclose(body["attention"]["weights"], trace.attention(1, 0, rows=[-1])[0], atol=1e-6)
    spans = "".join(text[t["start"] : t["end"]] for t in body["tokens"] if t["start"] is not None)
    assert spans == text


def test_after_the_corpus_the_server_answers_the_library_numbers(server):
    model = server.get("/api/model").json()
    assert model["status"] == "ready" and model["model"]["spec"] == SPEC
    for text in (f"{ENGLISH} after the corpus", CHINESE):
        body = server.post("/api/analyze", json={"text": text, "layer": -1, "head": "mean", "query": -2}).json()
        trace = capture(tiny("qwen2"), text)
        np.testing.assert_allclose(body["attention"]["weights"], trace.attention(-1, "mean", rows=[-2])[0], atol=1e-6)
        assert [c["id"] for c in body["prediction"]["top"]] == [c.id for c in trace.top_predictions(-2, 10)]


# --- the command line -------------------------------------------------------------------------------
MQ = ["--model", SPEC, "--quiet"]
USAGE = "usage"  # refused by the parser itself: `error: attnscope ...: <argparse's reason> (see ... --help)`


def cl(name: str, argv: list[str], message: str, stdin: bytes | None = None, *marks: Any) -> Any:
    return pytest.param(argv, stdin, message, id=name, marks=marks)


def analyze_cl(name: str, extra: list[str], message: str, text: str = ENGLISH, stdin: bytes | None = None) -> Any:
    return cl(name, ["analyze", text, *extra, *(MQ if "--model" not in extra else ["--quiet"])], message, stdin)


def attribute_cl(name: str, method: str, extra: list[str], message: str, text: str = ENGLISH) -> Any:
    return cl(name, ["attribute", text, "--method", method, *extra, *MQ], message)


FREE_PORT = str(free_port())


CLI_CASES = [
    # analyze: texts
    analyze_cl("analyze-empty", [], "text is empty", text=""),
    analyze_cl("analyze-spaces", [], "blank", text="   "),
    analyze_cl("analyze-whitespace", [], "blank", text="\n\t\u3000"),
    analyze_cl("analyze-huge", [], "the limit is 1,000,000", text=HUGE),
    analyze_cl("analyze-stdin-invalid-utf8", [], "not valid UTF-8", text="-", stdin=b"ok \xff\xfe"),
    analyze_cl("analyze-stdin-truncated-utf8", [], "not valid UTF-8", text="-", stdin="北京".encode()[:-1]),
    analyze_cl("analyze-stdin-empty", [], "text is empty", text="-", stdin=b""),
    analyze_cl("analyze-stdin-blank", [], "blank", text="-", stdin=b" \n\n "),
    analyze_cl("analyze-surrogate", [], "lone surrogate", text="a\ud800b"),
    analyze_cl("analyze-over-context", [], "reads at most 256", text=LONG),
    # analyze: selections
    analyze_cl("analyze-layer-out", ["--layer", "9"], "layer 9 out of range"),
    analyze_cl("analyze-layer-word", ["--layer", "top"], "layers must be"),
    analyze_cl("analyze-layer-empty", ["--layer", ""], "layers must be"),
    analyze_cl("analyze-layer-range-empty", ["--layer", "1-0"], "is empty"),
    analyze_cl("analyze-head-out", ["--head", "99"], "head 99 out of range"),
    analyze_cl("analyze-head-word", ["--head", "median"], "head must be"),
    analyze_cl("analyze-head-all", ["--head", "all"], "not all"),
    analyze_cl("analyze-head-empty", ["--head", ""], "head must be"),
    analyze_cl("analyze-head-list-gap", ["--head", "1,,2"], "head must be"),
    analyze_cl("analyze-query-out", ["--query", "99"], "query 99 out of range"),
    analyze_cl("analyze-query-negative", ["--query", "-99"], "out of range"),
    analyze_cl("analyze-top-k-zero", ["--top-k", "0"], "--top-k"),
    analyze_cl("analyze-top-k-big", ["--top-k", "101"], "--top-k"),
    analyze_cl("analyze-stack-cross", ["--stack", "cross"], "--stack cross"),
    analyze_cl("analyze-target-causal", ["--target", "x"], "encoder-decoder"),
    analyze_cl("analyze-save-under-file", ["--save", "{txt}/t.safetensors"], "notes.txt"),
    # analyze: model specs and devices
    analyze_cl("analyze-model-empty", ["--model", ""], "--model is empty"),
    analyze_cl("analyze-model-blank", ["--model", "   "], "--model is empty"),
    analyze_cl("analyze-model-unknown", ["--model", "no-such-model"], "unknown model 'no-such-model'"),
    analyze_cl("analyze-model-tiny-unknown", ["--model", "tiny:nope"], "unknown tiny family"),
    analyze_cl("analyze-model-etc-passwd", ["--model", "../../etc/passwd"], "passwd"),
    analyze_cl("analyze-model-dev-null", ["--model", "/dev/null"], "/dev/null"),
    analyze_cl("analyze-model-empty-folder", ["--model", "{empty}"], "no .safetensors weights"),
    analyze_cl("analyze-model-fake-gguf", ["--model", "{gguf}"], "GGUF"),
    analyze_cl("analyze-model-text-file", ["--model", "{txt}"], "neither a .gguf file nor a model folder"),
    analyze_cl("analyze-model-broken", ["--model", "{broken}"], "could not load"),
    analyze_cl("analyze-model-home", ["--model", "~"], "no .safetensors weights"),
    analyze_cl("analyze-device-unknown", ["--model", SPEC, "--device", "quantum"], "device"),
    analyze_cl("analyze-device-cuda", ["--model", SPEC, "--device", "cuda:7"], "cuda"),
    analyze_cl("analyze-dtype-unknown", ["--model", SPEC, "--dtype", "float7"], "--dtype: unknown dtype 'float7'"),
    # analyze: argparse
    cl("analyze-no-text", ["analyze", *MQ], "give the text as TEXT or as --file PATH"),
    cl("analyze-query-word", ["analyze", "hi", "--query", "last", *MQ], USAGE),
    cl("analyze-top-k-float", ["analyze", "hi", "--top-k", "1.5", *MQ], USAGE),
    cl("analyze-backend", ["analyze", "hi", "--backend", "fast", *MQ], USAGE),
    cl("analyze-stash-unknown", ["analyze", "hi", "--stash", "pinned", *MQ], USAGE),
    cl("analyze-stash-budget-word", ["analyze", "hi", "--stash-budget", "lots", *MQ], USAGE),
    cl("analyze-stash-budget-unit", ["analyze", "hi", "--stash-budget", "2 parsecs", *MQ], USAGE),
    cl("analyze-stash-budget-zero", ["analyze", "hi", "--stash-budget", "0", *MQ], USAGE),
    cl("heads-stash-budget-negative", ["heads", "hi", "--stash-budget", "-1GB", *MQ], USAGE),
    cl("attribute-no-stash", ["attribute", "hi", "--stash", "host", *MQ], USAGE),
    cl("analyze-stack-unknown", ["analyze", "hi", "--stack", "middle", *MQ], USAGE),
    cl("analyze-unknown-option", ["analyze", "hi", "--colour", "red", *MQ], USAGE),
    # generate
    cl("generate-zero-tokens", ["generate", "hi", "--max-new-tokens", "0", *MQ], "--max-new-tokens must be"),
    cl("generate-many-tokens", ["generate", "hi", "--max-new-tokens", "99999", *MQ], "--max-new-tokens must be"),
    cl("generate-tokens-word", ["generate", "hi", "--max-new-tokens", "lots", *MQ], USAGE),
    cl("generate-beams-zero", ["generate", "hi", "--beams", "0", *MQ], "--beams must be"),
    cl("generate-temperature-no-sample", ["generate", "hi", "--temperature", "0.5", *MQ], "are for --sample"),
    cl("generate-temperature-zero", ["generate", "hi", "--sample", "--temperature", "0", *MQ], "--temperature must"),
    cl("generate-temperature-nan", ["generate", "hi", "--sample", "--temperature", "nan", *MQ], "--temperature must"),
    cl("generate-top-p-big", ["generate", "hi", "--sample", "--top-p", "1.5", *MQ], "--top-p must"),
    cl("generate-seed-negative", ["generate", "hi", "--sample", "--seed", "-3", *MQ], "--seed must"),
    cl("generate-stop-empty", ["generate", "hi", "--stop", "", *MQ], "each --stop"),
    cl("generate-system-no-chat", ["generate", "hi", "--system", "be brief", *MQ], "--system is for --chat"),
    cl("generate-top-k-zero", ["generate", "hi", "--top-k", "0", *MQ], "--top-k"),
    cl("generate-encoder", ["generate", "hi", "--model", "tiny:bert", "--quiet"], "is an encoder"),
    cl("generate-chat-encoder", ["generate", "hi", "--chat", "--model", "tiny:bert", "--quiet"], "is an encoder"),
    cl("generate-stack-encoder", ["generate", "hi", "--model", "tiny:t5", "--stack", "encoder", "--quiet"], "decoder"),
    cl("generate-stack-causal", ["generate", "hi", "--stack", "cross", *MQ], "--stack cross"),
    cl("generate-empty", ["generate", "", *MQ], "text is empty"),
    cl("generate-blank", ["generate", "  ", *MQ], "blank"),
    cl("generate-layer-out", ["generate", "hi", "--layer", "9", "--max-new-tokens", "2", *MQ], "layer 9 out of range"),
    cl("generate-head-all", ["generate", "hi", "--head", "all", "--max-new-tokens", "2", *MQ], "not all"),
    cl("generate-save-folder", ["generate", "hi", "--save", "{tmp}", *MQ], "folder"),
    cl("unknown-command", ["analyse", "hi"], USAGE),
    cl("version-extra", ["version", "now"], USAGE),
    # models
    cl("models-install-nothing", ["models", "install"], "name the models to install"),
    cl("models-list-alias", ["models", "list", "smollm2-135m"], "takes no aliases"),
    cl("models-install-unknown", ["models", "install", "no-such-model"], "no-such-model"),
    cl("models-remove-unknown", ["models", "remove", "no-such-model"], "no-such-model"),
    cl("models-unknown-action", ["models", "frobnicate"], "unknown action"),
    # serve (every case fails before a server starts)
    cl("serve-port-zero", ["serve", "--quiet", "--port", "0"], "--port"),
    cl("serve-port-big", ["serve", "--quiet", "--port", "70000"], "--port"),
    cl("serve-port-negative", ["serve", "--quiet", "--port=-1"], "--port"),
    cl("serve-port-word", ["serve", "--quiet", "--port", "http"], USAGE),
    cl("serve-api-key-env", ["serve", "--quiet", "--api-key-env", "ATTNSCOPE_NO_SUCH_VARIABLE"], "not set"),
    cl("serve-model-empty", ["serve", "--quiet", "--model", ""], "--model is empty"),
    # (a port of their own: the default 8000 may be serving something else on this machine)
    cl("serve-model-unknown", ["serve", "--quiet", "--port", FREE_PORT, "--model", "no-such-model"], "unknown model"),
    cl("serve-model-folder", ["serve", "--quiet", "--port", FREE_PORT, "--model", "{empty}"], "no .safetensors"),
    cl("serve-device-unknown", ["serve", "--quiet", "--model", SPEC, "--device", "quantum"], "device"),
    cl("serve-host-invalid", ["serve", "--quiet", "--model", SPEC, "--host", "256.1.1.1", "--port", "8"], "--host"),
    # methods
    cl("methods-unknown-option", ["methods", "--colour"], USAGE),
    cl("methods-positional", ["methods", "occlusion"], USAGE),
    # attribute
    attribute_cl("attribute-empty", "occlusion", [], "text is empty", text=""),
    attribute_cl("attribute-blank", "grad-norm", [], "blank", text=" \n "),
    cl("attribute-stdin-invalid", ["attribute", "-", "--method", "grad-norm", *MQ], "not valid UTF-8", b"\xc3("),
    attribute_cl("attribute-over-context", "occlusion", [], "reads at most 256", text=LONG),
    attribute_cl("attribute-flow-over-context", "flow", [], "reads at most 256", text=LONG),
    attribute_cl("attribute-steps-zero", "integrated-gradients", ["--steps", "0"], "between 1 and"),
    attribute_cl("attribute-steps-word", "integrated-gradients", ["--steps", "many"], "must be an integer"),
    attribute_cl("attribute-steps-float", "integrated-gradients", ["--steps", "2.5"], "must be an integer"),
    attribute_cl("attribute-steps-huge", "integrated-gradients", ["--steps", "99999999"], "between 1 and"),
    attribute_cl("attribute-steps-nan", "integrated-gradients", ["--steps", "nan"], "must be an integer"),
    attribute_cl("attribute-mode", "occlusion", ["--mode", "erase"], "must be one of"),
    attribute_cl("attribute-other-option", "grad-norm", ["--steps", "8"], "not an option of grad-norm"),
    attribute_cl("attribute-baseline-occlusion", "occlusion", ["--baseline", "zero"], "not an option of occlusion"),
    attribute_cl("attribute-query-out", "grad-norm", ["--query", "99"], "query 99 out of range"),
    attribute_cl("attribute-layers-out", "attention", ["--layers", "0-9"], "out of range"),
    attribute_cl("attribute-heads-word", "attention", ["--heads", "median"], "head must be"),
    attribute_cl("attribute-target-empty", "occlusion", ["--target", ""], "empty"),
    attribute_cl("attribute-scorer-model-alone", "occlusion", ["--scorer-model", "x"], "is for --scorer-url"),
    attribute_cl("attribute-scorer-url-gradients", "grad-norm", ["--scorer-url", "http://127.0.0.1:9/v1"], "occlusion"),
    cl("attribute-masked-model", ["attribute", "a b", "--method", "occlusion", "--model", "tiny:bert", "-q"], "causal"),
    cl("attribute-no-method", ["attribute", ENGLISH, *MQ], USAGE),
    cl("attribute-unknown-method", ["attribute", ENGLISH, "--method", "magic", *MQ], USAGE),
    cl("attribute-granularity", ["attribute", ENGLISH, "--method", "flow", "--granularity", "letter", *MQ], USAGE),
    cl("attribute-objective", ["attribute", ENGLISH, "--method", "grad-norm", "--objective", "max", *MQ], USAGE),
    # agreement
    cl("agreement-empty", ["agreement", "", *MQ], "text is empty"),
    cl("agreement-blank", ["agreement", "\t", *MQ], "blank"),
    cl("agreement-steps-zero", ["agreement", ENGLISH, "--steps", "0", *MQ], "between 1 and"),
    cl("agreement-one-method", ["agreement", ENGLISH, "--methods", "attention", *MQ], "two"),
    cl("agreement-same-method-twice", ["agreement", ENGLISH, "--methods", "flow", "flow", *MQ], "two"),
    cl(
        "agreement-option-of-none",
        ["agreement", ENGLISH, "--methods", "flow", "attention", "--steps", "8", *MQ],
        "steps",
    ),
    cl("agreement-over-context", ["agreement", LONG, *MQ], "reads at most 256"),
    cl("agreement-unknown-method", ["agreement", ENGLISH, "--methods", "attention", "magic", *MQ], USAGE),
    # heads
    cl("heads-empty", ["heads", "", *MQ], "text is empty"),
    cl("heads-threshold-big", ["heads", ENGLISH, "--threshold", "2", *MQ], "threshold"),
    cl("heads-threshold-negative", ["heads", ENGLISH, "--threshold=-1", *MQ], "threshold"),
    cl("heads-threshold-nan", ["heads", ENGLISH, "--threshold", "nan", *MQ], "threshold"),
    cl("heads-threshold-inf", ["heads", ENGLISH, "--threshold", "inf", *MQ], "threshold"),
    cl("heads-stack-cross", ["heads", ENGLISH, "--stack", "cross", *MQ], "stack"),
    cl("heads-over-context", ["heads", LONG, *MQ], "reads at most 256"),
    cl("heads-threshold-word", ["heads", ENGLISH, "--threshold", "low", *MQ], USAGE),
    # parts
    cl("parts-no-equals", ["parts", ENGLISH, "--part", "capital", *MQ], "NAME=SNIPPET"),
    cl("parts-no-name", ["parts", ENGLISH, "--part", "=capital", *MQ], "NAME=SNIPPET"),
    cl("parts-no-snippet", ["parts", ENGLISH, "--part", "a=", *MQ], "NAME=SNIPPET"),
    cl("parts-not-in-text", ["parts", ENGLISH, "--part", "a=Berlin", *MQ], "not in the text"),
    cl("parts-duplicate", ["parts", ENGLISH, "--part", "a=The", "--part", "a=capital", *MQ], "'a'"),
    cl("parts-from-unknown", ["parts", ENGLISH, "--part", "a=The", "--from", "b", *MQ], "no part named 'b'"),
    cl("parts-from-out", ["parts", ENGLISH, "--part", "a=The", "--from", "99", *MQ], "out of range"),
    cl("parts-empty", ["parts", "", "--part", "a=x", *MQ], "text is empty"),
    cl("parts-over-context", ["parts", LONG, "--part", "a=w", *MQ], "reads at most 256"),
    cl("parts-no-part", ["parts", ENGLISH, *MQ], USAGE),
    # compare
    cl("compare-empty", ["compare", ENGLISH, "", *MQ], "text is empty"),
    cl("compare-blank", ["compare", ENGLISH, "  ", *MQ], "blank"),
    cl("compare-layer-out", ["compare", ENGLISH, CHINESE, "--layer", "99", *MQ], "out of range"),
    cl("compare-layer-out-one-text", ["compare", ENGLISH, "--layer", "99", *MQ], "out of range"),
    cl("compare-head-out-three", ["compare", "a b", "c d", "e f", "--head", "99", *MQ], "out of range"),
    cl("compare-head-word", ["compare", ENGLISH, CHINESE, "--head", "median", *MQ], "head must be"),
    cl("compare-over-context", ["compare", ENGLISH, LONG, *MQ], "reads at most 256"),
    cl("compare-head-all", ["compare", ENGLISH, CHINESE, "--head", "all", *MQ], "not all"),
    cl("compare-no-texts", ["compare", *MQ], "give the texts to compare"),
    # report
    cl("report-not-html", ["report", ENGLISH, "--out", "{tmp}/r.txt", *MQ], ".html"),
    cl("report-no-folder", ["report", ENGLISH, "--out", "{tmp}/missing/r.html", *MQ], "does not exist"),
    cl("report-folder", ["report", ENGLISH, "--out", "{tmp}/folder.html", *MQ], "is a folder"),
    cl("report-empty", ["report", "", "--out", "{tmp}/r.html", *MQ], "text is empty"),
    cl("report-steps-zero", ["report", ENGLISH, "--out", "{tmp}/r.html", "--steps", "0", *MQ], "between 1 and"),
    cl("report-over-context", ["report", LONG, "--out", "{tmp}/r.html", *MQ], "reads at most 256"),
    cl("report-no-out", ["report", ENGLISH, *MQ], USAGE),
]


@pytest.fixture(scope="module")
def cli_paths(files: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    tmp = tmp_path_factory.mktemp("cli")
    (tmp / "folder.html").mkdir()
    return {**files, "tmp": str(tmp)}


def one_error_line(code: object, out: str, err: str, message: str) -> None:
    """Exit 2, nothing on stdout, no traceback; one ``error: ...`` line (the parser's own, for USAGE)."""
    assert code == 2, (code, err[-500:])
    assert out == "", out[:300]
    assert "Traceback" not in err and 'File "' not in err, err[-2000:]
    lines = err.strip("\n").splitlines()
    if message == USAGE:
        assert len(lines) == 1 and lines[0].startswith("error: attnscope") and "--help" in lines[0], err
        return
    assert len(lines) == 1 and lines[0].startswith("error: "), err[-2000:]
    assert message.lower() in lines[0].lower(), (message, lines[0])


@pytest.mark.parametrize(("argv", "stdin", "message"), CLI_CASES)
def test_cli_refuses(capsys, monkeypatch, cli_paths, argv, stdin, message):
    argv = [arg.format(**cli_paths) if "{" in arg and arg.count("{") == 1 else arg for arg in argv]
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin or b""), encoding="utf-8"))
    monkeypatch.delenv("ATTNSCOPE_NO_SUCH_VARIABLE", raising=False)
    try:
        code: object = main(argv)
    except SystemExit as exit:
        code = exit.code
    out, err = capsys.readouterr()
    one_error_line(code, out, err, message)
    assert not (Path(cli_paths["tmp"]) / "r.html").exists() and not (Path(cli_paths["tmp"]) / "r.json").exists()


PROCESS_CASES = [
    pytest.param(["analyze", "-", *MQ], b"\xff\xfe\xfd", "not valid UTF-8", id="stdin-invalid-utf8"),
    pytest.param(["analyze", "-", *MQ], HUGE.encode(), "the limit is 1,000,000", id="stdin-huge"),
    pytest.param(["analyze", os.fsdecode(b"caf\xe9"), *MQ], None, "lone surrogate", id="argv-invalid-utf8"),
    pytest.param(["analyze", "hi", "--model", "../../etc/passwd", "--quiet"], None, "passwd", id="model-path"),
    pytest.param(["analyze", "hi", *MQ, "--device", "quantum"], None, "device", id="device"),
    pytest.param(
        ["attribute", "hi", "--method", "integrated-gradients", "--steps", "0", *MQ], None, "between", id="steps"
    ),
    pytest.param(["heads", "hi", "--threshold", "nan", *MQ], None, "threshold", id="threshold-nan"),
    pytest.param(["report", "hi", "--out", "/no/such/folder/r.html", *MQ], None, "does not exist", id="report-out"),
]


@pytest.mark.parametrize(("argv", "stdin", "message"), PROCESS_CASES)
def test_no_traceback_reaches_a_user(argv, stdin, message):
    env = {**os.environ, "PYTHONIOENCODING": "utf-8", "LC_ALL": "C.UTF-8"}
    result = subprocess.run(
        [sys.executable, "-m", "attnscope", *argv], input=stdin, capture_output=True, timeout=300, check=False, env=env
    )
    one_error_line(result.returncode, result.stdout.decode(), result.stderr.decode("utf-8", "replace"), message)


def test_serve_refuses_a_port_in_use_before_loading(capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code = main(["serve", "--quiet", "--model", "no-such-model", "--port", str(port)])
    out, err = capsys.readouterr()
    one_error_line(code, out, err, f"cannot listen on 127.0.0.1 port {port}")


def test_cli_analyses_control_characters(capsys):
    assert main(["analyze", CONTROL, "--layer", "1", "--head", "0", "--json", *MQ]) == 0
    out, err = capsys.readouterr()
    body = json.loads(out)
    trace = capture(tiny("qwen2"), CONTROL)
    assert err == "" and body["text"] == CONTROL and [t["id"] for t in body["tokens"]] == [t.id for t in trace.tokens]
    np.testing.assert_allclose(body["attention"]["weights"], trace.attention(1, 0, rows=[-1])[0], atol=1e-6)
