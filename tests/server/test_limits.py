"""Limits that protect the user and the server: a scorer's API key never follows a redirect (and its
URL is recorded without secrets), and eager attention maps are refused beyond their byte budget."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

import attnscope
from attnscope.attribution.scorers import CallableScorer
from attnscope.attribution.scorers.http import OpenAIChatScorer, OpenAICompletionsScorer
from attnscope.capture import engine
from attnscope.capture.tokens import tokenize
from attnscope.errors import ScorerError, TooLongError
from attnscope.methods.run import attribute
from attnscope.render.json import attribution_json
from tests.conftest import tiny

TEXT = "The capital of France is"


class Recording(BaseHTTPRequestHandler):
    """Records every request's method, path and headers; redirects when the server says so."""

    def _answer(self) -> None:
        server = self.server
        server.seen.append((self.command, self.path, dict(self.headers)))  # type: ignore[attr-defined]
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        redirect = server.redirect  # type: ignore[attr-defined]
        body = b"" if redirect else b'{"choices": []}'
        self.send_response(redirect[0] if redirect else 200)
        if redirect:
            self.send_header("Location", redirect[1])
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, *_args: object) -> None:
        pass


@contextmanager
def recording_server(redirect: tuple[int, str] | None = None) -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Recording)
    server.seen, server.redirect = [], redirect  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
@pytest.mark.parametrize("scorer_class", [OpenAICompletionsScorer, OpenAIChatScorer])
def test_the_api_key_never_follows_a_redirect(monkeypatch, status, scorer_class):
    monkeypatch.setenv("HB_SCORER_KEY", "sk-very-secret")
    with recording_server() as elsewhere:
        target = f"http://127.0.0.1:{elsewhere.server_port}/v1/collect?from=redirect"
        with recording_server((status, target)) as endpoint:
            scorer = scorer_class(f"http://127.0.0.1:{endpoint.server_port}", api_key_env="HB_SCORER_KEY")
            with pytest.raises(ScorerError) as refused:
                scorer.score(["The capital of"], " France")
            assert elsewhere.seen == []  # the other server never heard of this request, key or not
            assert [(method, path) for method, path, _ in endpoint.seen] == [("POST", f"/v1{scorer.path}")]
            assert endpoint.seen[0][2]["Authorization"] == "Bearer sk-very-secret"  # where the user sent it
    message = str(refused.value)
    assert f"answered {status}" in message and "redirect" in message
    assert f"127.0.0.1:{elsewhere.server_port}/v1/collect" in message and "from=redirect" not in message
    assert "sk-very-secret" not in message


def test_the_scorer_url_is_recorded_without_userinfo_or_query():
    class Remote(CallableScorer):
        url = "https://alice:s3cret@scorer.example:8443/v1/completions?api_key=sk-abc#part"

    scorer = Remote(lambda prompt, continuation: -0.1 * len(prompt))
    result = attribute(tiny("qwen2"), TEXT, "occlusion", scorer=scorer, target=" Paris")
    assert result.provenance["scorer"] == {"type": "Remote", "url": "https://scorer.example:8443/v1/completions"}
    recorded = json.dumps(attribution_json(result))
    assert "s3cret" not in recorded and "sk-abc" not in recorded and "alice" not in recorded
    from attnscope.attribution.scorers.http import public_url

    assert public_url("http://u:p@[::1]:8000/v1?k=1") == "http://[::1]:8000/v1"
    assert public_url("http://127.0.0.1:8000/v1") == "http://127.0.0.1:8000/v1"


# --- eager attention maps have a byte budget ----------------------------------------------------------
def test_full_maps_are_counted_over_every_stack():
    qwen, t5 = tiny("qwen2"), tiny("t5")
    assert engine.full_attention_bytes(qwen, 10) == qwen.arch.layers * qwen.arch.heads * 10 * 10 * 4
    stacks = t5.arch.stacks
    expected = 4 * (
        stacks["encoder"].layers * stacks["encoder"].heads * 10 * 10
        + stacks["decoder"].layers * stacks["decoder"].heads * 3 * 3
        + stacks["cross"].layers * stacks["cross"].heads * 3 * 10
    )
    assert engine.full_attention_bytes(t5, 10, 3) == expected
    assert engine.FULL_MAX_BYTES == 2 * 1024**3


def test_backend_full_is_refused_beyond_the_budget_and_auto_uses_qk(monkeypatch):
    model = tiny("qwen2")
    n = len(tokenize(model.tokenizer, TEXT))
    monkeypatch.setattr(engine, "FULL_MAX_BYTES", engine.full_attention_bytes(model, n) - 1)
    with pytest.raises(TooLongError, match=r"backend full would hold .* over the .* budget.*use backend qk") as refused:
        attnscope.capture(model, TEXT, backend="full")
    assert "\n" not in str(refused.value)
    assert attnscope.capture(model, TEXT).backend == "qk"  # auto: within the budget or not at all
    monkeypatch.setattr(engine, "FULL_MAX_BYTES", engine.full_attention_bytes(model, n))
    assert attnscope.capture(model, TEXT, backend="full").backend == "full"  # the limit itself is allowed


def _falcon(folder: Path) -> attnscope.LoadedModel:
    """A tiny Falcon: an architecture whose attention the qk backend cannot record."""
    import torch
    import transformers

    from attnscope.models.tiny import build_tokenizer

    tokenizer = build_tokenizer("gpt2")
    config = transformers.FalconConfig(
        vocab_size=len(tokenizer), hidden_size=16, num_hidden_layers=2, num_attention_heads=2
    )
    torch.manual_seed(0)
    transformers.AutoModelForCausalLM.from_config(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return attnscope.load_model(str(folder))


def test_the_auto_fallback_to_full_respects_the_budget(monkeypatch, tmp_path):
    model = _falcon(tmp_path / "falcon")
    text = "word " * 300  # over AUTO_QK_MIN_TOKENS: auto tries qk first
    n = len(tokenize(model.tokenizer, text))
    assert n > engine.AUTO_QK_MIN_TOKENS
    assert attnscope.capture(model, text).backend == "full"  # qk is unsupported: full, within the budget
    monkeypatch.setattr(engine, "FULL_MAX_BYTES", engine.full_attention_bytes(model, n) - 1)
    with pytest.raises(TooLongError, match=r"backend full would hold .* backend qk does not support falcon"):
        attnscope.capture(model, text)


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/analyze", {"text": TEXT, "backend": "full"}),
        ("/api/heads", {"text": TEXT, "backend": "full"}),
        ("/api/parts", {"text": TEXT, "backend": "full", "parts": [{"name": "city", "start": 4, "end": 11}]}),
    ],
)
def test_the_api_refuses_full_maps_beyond_the_budget(client, monkeypatch, path, body):
    monkeypatch.setattr(engine, "FULL_MAX_BYTES", 1000)
    response = client.post(path, json=body)
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "too_long" and "use backend qk" in response.json()["detail"]
    answer = client.post(path, json={**body, "backend": "auto"})
    assert answer.status_code == 200 and answer.json()["provenance"]["backend"] == "qk"
