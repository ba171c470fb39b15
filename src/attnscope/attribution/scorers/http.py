"""Black-box scorers over OpenAI-compatible HTTP endpoints (``attnscope serve`` provides both).

- :class:`OpenAICompletionsScorer` — ``POST /v1/completions`` with ``echo: true, max_tokens: 0,
  logprobs: 0``: the endpoint returns the log-probability of every prompt token, so **any
  continuation text** can be scored (the convention of lm-evaluation-harness).
- :class:`OpenAIChatScorer` — ``POST /v1/chat/completions`` with ``logprobs: true,
  top_logprobs: 20, max_tokens: 1``: today's chat APIs return log-probabilities of the answer
  only, so the target is **the answer's first token** (the prompt is sent as the user message).
  When an occluded prompt makes the target fall out of the top 20, its log-probability is only
  bounded by the 20th; such units are listed in ``details["bounded_units"]``.

The API key is read from an environment variable the user names (``api_key_env``), never from a
command-line value or a stored file, and is sent as ``Authorization: Bearer <key>``.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any

from attnscope.attribution.scorers import Scored
from attnscope.errors import InputError, ScorerError
from attnscope.progress import Progress, report


def endpoint(base_url: str, path: str) -> str:
    """``base_url`` (with or without ``/v1``) joined with ``path`` (``/completions``, ...)."""
    base = base_url.rstrip("/")
    if not base.startswith(("http://", "https://")):
        raise InputError(f"scorer URL must start with http:// or https://; got {base_url!r}")
    return base + ("" if base.endswith("/v1") else "/v1") + path


def api_key_from(variable: str | None) -> str | None:
    """The key in the environment variable ``variable`` (None: no key), or a clear error when unset."""
    if not variable:
        return None
    key = os.environ.get(variable)
    if not key:
        raise InputError(f"the environment variable {variable} (named for the scorer's API key) is not set")
    return key


class HTTPScorer:
    """What the OpenAI-compatible scorers share: one JSON POST with an optional bearer key."""

    path = "/completions"

    def __init__(
        self, base_url: str, model: str | None = None, *, api_key_env: str | None = None, timeout: float = 120
    ) -> None:
        self.url = endpoint(base_url, self.path)
        self.model = model
        self.api_key_env = api_key_env
        self.timeout = timeout

    def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        headers = {"Content-Type": "application/json"}
        key = api_key_from(self.api_key_env)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        if self.model:
            body = {**body, "model": self.model}
        request = urllib.request.Request(self.url, json.dumps(body).encode(), headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                answer = json.loads(response.read())
        except urllib.error.HTTPError as error:
            detail = " ".join(error.read().decode("utf-8", "replace").split())[:300]
            raise ScorerError(f"endpoint {self.url} answered {error.code}: {detail}") from None
        except (urllib.error.URLError, TimeoutError, OSError) as error:
            raise ScorerError(f"cannot reach endpoint {self.url}: {error}") from None
        except ValueError:
            raise ScorerError(f"endpoint {self.url} did not answer JSON") from None
        if not isinstance(answer, dict):
            raise ScorerError(f"endpoint {self.url} answered {type(answer).__name__}, not a JSON object")
        return answer


class OpenAICompletionsScorer(HTTPScorer):
    """Scores any continuation through ``/v1/completions`` with echoed prompt log-probabilities.

    Sends ``prompt + continuation`` with ``echo: true, max_tokens: 0, logprobs: 0`` and sums
    ``token_logprobs`` of the echoed tokens whose ``text_offset`` range reaches into the continuation.
    """

    path = "/completions"
    targets = "any continuation text (echoed prompt log-probabilities)"

    def score(self, prompts: Sequence[str], continuation: str, progress: Progress | None = None) -> list[Scored]:
        results = []
        for index, prompt in enumerate(prompts):
            report(progress, index, len(prompts), "scoring")
            body = {"prompt": prompt + continuation, "max_tokens": 0, "echo": True, "logprobs": 0, "temperature": 0}
            answer = self._post(body)
            try:
                logprobs = answer["choices"][0]["logprobs"]
                offsets, values, pieces = logprobs["text_offset"], logprobs["token_logprobs"], logprobs["tokens"]
            except (KeyError, IndexError, TypeError):
                raise ScorerError(f"endpoint {self.url} returned no echoed log-probabilities") from None
            total = 0.0
            inside = False  # from the first token that reaches past the prompt, as ModelScorer counts
            for offset, value, piece in zip(offsets, values, pieces, strict=True):
                inside = inside or offset + len(piece) > len(prompt)
                if inside:
                    if value is None:
                        raise ScorerError("the endpoint gave no log-probability for a continuation token")
                    total += float(value)
            results.append(Scored(total))
        report(progress, len(prompts), len(prompts), "scoring")
        return results

    def next_token(self, prompt: str) -> str:
        """The endpoint's own greedy continuation of ``prompt`` (one token), as text."""
        answer = self._post({"prompt": prompt, "max_tokens": 1, "temperature": 0})
        try:
            text = str(answer["choices"][0]["text"])
        except (KeyError, IndexError, TypeError):
            raise ScorerError(f"endpoint {self.url} returned no completion text") from None
        if not text:
            raise ScorerError(f"endpoint {self.url} predicted an empty continuation; pass the target text")
        return text


class OpenAIChatScorer(HTTPScorer):
    """Scores the first token of the answer through ``/v1/chat/completions`` (see the module docstring)."""

    path = "/chat/completions"
    targets = "the first token of the answer (among the endpoint's top 20 log-probabilities)"
    top = 20

    def _first(self, prompt: str) -> dict[str, Any]:
        body = {
            "messages": [{"role": "user", "content": prompt}],
            "max_tokens": 1,
            "temperature": 0,
            "logprobs": True,
            "top_logprobs": self.top,
        }
        answer = self._post(body)
        try:
            first = answer["choices"][0]["logprobs"]["content"][0]
            first["token"], first["logprob"]
        except (KeyError, IndexError, TypeError):
            raise ScorerError(f"endpoint {self.url} returned no log-probabilities for the answer") from None
        return dict(first)

    def score(self, prompts: Sequence[str], continuation: str, progress: Progress | None = None) -> list[Scored]:
        results = []
        for index, prompt in enumerate(prompts):
            report(progress, index, len(prompts), "scoring")
            first = self._first(prompt)
            candidates = [(str(first["token"]), float(first["logprob"]))]
            candidates += [(str(c["token"]), float(c["logprob"])) for c in first.get("top_logprobs") or []]
            found = [value for token, value in candidates if token == continuation]
            if found:
                results.append(Scored(found[0]))
            else:  # not among the top: at most the smallest log-probability listed
                results.append(Scored(min(value for _, value in candidates), bound=True))
        report(progress, len(prompts), len(prompts), "scoring")
        return results

    def next_token(self, prompt: str) -> str:
        """The endpoint's own first answer token for ``prompt``."""
        token = str(self._first(prompt)["token"])
        if not token:
            raise ScorerError(f"endpoint {self.url} answered with an empty first token; pass the target text")
        return token
