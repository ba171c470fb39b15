"""Black-box scorers over OpenAI-compatible HTTP endpoints (``attnscope serve`` provides both).

- :class:`OpenAICompletionsScorer` — ``POST /v1/completions`` with ``echo: true, max_tokens: 0,
  logprobs: 0``: the endpoint returns the log-probability of every prompt token, so **any
  continuation text** can be scored (the convention of lm-evaluation-harness).
- :class:`OpenAIChatScorer` — ``POST /v1/chat/completions`` with ``max_tokens: 1, logprobs: true,
  top_logprobs: 20, temperature: 0``: today's chat APIs return log-probabilities of the answer
  only, so the target is **one token: the answer's first** (the prompt is sent as the only user
  message; the endpoint's chat template wraps it). The target's log-probability is read where the
  text (or ``bytes``) of the answer's first token or of one of its top 20 alternatives equals the
  target exactly. When an occluded prompt pushes the target out of the top 20, its log-probability
  is only bounded by the smallest one listed (``Scored.bound``); occlusion lists such units in
  ``details["bounded_units"]`` (their scores are then lower bounds of the drop).

Each scorer says which targets it can score in its ``targets`` attribute. The API key is read from
an environment variable the user names (``api_key_env``) — when the scorer is made (an unset
variable is a one-line :class:`InputError` at once) and again for each request — never from a
command-line value or a stored file, and is sent as ``Authorization: Bearer <key>``. Redirects are
not followed (a 3xx answer is a :class:`ScorerError` naming the new location), so the key only ever
goes to the URL the user gave; provenance records that URL without userinfo or query (:func:`public_url`).
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
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


def public_url(url: str | None) -> str | None:
    """``url`` as it may be recorded: without ``user:password@`` userinfo, query string or fragment."""
    if url is None:
        return None
    try:
        parts = urllib.parse.urlsplit(str(url))
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "(unparsable URL)"
    if ":" in host:
        host = f"[{host}]"
    netloc = host + (f":{port}" if port is not None else "")
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """Answers 3xx as they are (an ``HTTPError``) instead of re-sending the request, and its
    ``Authorization`` header, to wherever the endpoint points."""

    def redirect_request(self, *args: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirects)


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
    targets = ""

    def __init__(
        self, base_url: str, model: str | None = None, *, api_key_env: str | None = None, timeout: float = 120
    ) -> None:
        self.url = endpoint(base_url, self.path)
        self.model = model
        self.api_key_env = api_key_env
        self.timeout = timeout
        api_key_from(api_key_env)  # an unset variable is refused now, before any work

    def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        headers = {"Content-Type": "application/json"}
        key = api_key_from(self.api_key_env)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        if self.model:
            body = {**body, "model": self.model}
        request = urllib.request.Request(self.url, json.dumps(body).encode(), headers, method="POST")
        try:
            with _OPENER.open(request, timeout=self.timeout) as response:
                answer = json.loads(response.read())
        except urllib.error.HTTPError as error:
            if 300 <= error.code < 400:
                location = public_url(error.headers.get("Location")) if error.headers else None
                raise ScorerError(
                    f"endpoint {self.url} answered {error.code} (a redirect to {location or 'nowhere'}); "
                    "scorer requests do not follow redirects (the API key would go along): give the final URL"
                ) from None
            detail = " ".join(error.read().decode("utf-8", "replace").split())[:300]
            raise ScorerError(f"endpoint {self.url} answered {error.code}: {detail}") from None
        except (urllib.error.URLError, TimeoutError, OSError) as error:
            raise ScorerError(f"cannot reach endpoint {self.url}: {error}") from None
        except ValueError:
            raise ScorerError(f"endpoint {self.url} did not answer JSON") from None
        if not isinstance(answer, dict):
            raise ScorerError(f"endpoint {self.url} answered {type(answer).__name__}, not a JSON object")
        return answer

    def _logprob(self, value: Any) -> float:
        """A log-probability from the answer: a number, finite or -inf."""
        if isinstance(value, bool) or not isinstance(value, int | float) or value != value or value == float("inf"):
            raise ScorerError(f"endpoint {self.url} gave {value!r} where a log-probability belongs")
        return float(value)


class OpenAICompletionsScorer(HTTPScorer):
    """Scores any continuation through ``/v1/completions`` with echoed prompt log-probabilities.

    Sends ``prompt + continuation`` with ``echo: true, max_tokens: 0, logprobs: 0`` and sums
    ``token_logprobs`` of the echoed tokens whose ``text_offset`` range reaches into the continuation.
    """

    path = "/completions"
    targets = "any continuation text (the sum of its echoed tokens' log-probabilities)"

    def score(self, prompts: Sequence[str], continuation: str, progress: Progress | None = None) -> list[Scored]:
        results = []
        for index, prompt in enumerate(prompts):
            report(progress, index, len(prompts), "scoring")
            body = {"prompt": prompt + continuation, "max_tokens": 0, "echo": True, "logprobs": 0, "temperature": 0}
            answer = self._post(body)
            try:
                logprobs = answer["choices"][0]["logprobs"]
                rows = list(zip(logprobs["text_offset"], logprobs["token_logprobs"], logprobs["tokens"], strict=True))
                total = 0.0
                inside = False  # from the first token that reaches past the prompt, as ModelScorer counts
                for offset, value, piece in rows:
                    inside = inside or int(offset) + len(piece) > len(prompt)
                    if inside:
                        if value is None:
                            raise ScorerError("the endpoint gave no log-probability for a continuation token")
                        total += self._logprob(value)
            except (KeyError, IndexError, TypeError, ValueError):
                raise ScorerError(f"endpoint {self.url} returned no usable echoed log-probabilities") from None
            if not inside:
                raise ScorerError(f"endpoint {self.url} echoed no token of the continuation")
            results.append(Scored(total))
        report(progress, len(prompts), len(prompts), "scoring")
        return results

    def next_token(self, prompt: str) -> str:
        """The endpoint's own greedy continuation of ``prompt``: one token, or as many as it takes (up
        to 4) to end in a whole character when the first is a byte piece of one (its text would be U+FFFD)."""
        for count in range(1, 5):
            answer = self._post({"prompt": prompt, "max_tokens": count, "temperature": 0})
            try:
                text = answer["choices"][0]["text"]
            except (KeyError, IndexError, TypeError):
                text = None
            if not isinstance(text, str):
                raise ScorerError(f"endpoint {self.url} returned no completion text")
            if not text:
                raise ScorerError(
                    f"endpoint {self.url} predicted an empty continuation (the end of the text?); pass the target text"
                )
            if not text.endswith("\ufffd"):
                break
        return text


class OpenAIChatScorer(HTTPScorer):
    """Scores the first token of the answer through ``/v1/chat/completions`` (see the module docstring)."""

    path = "/chat/completions"
    targets = (
        "one token: the answer's first, given as its exact text (found among the endpoint's top 20 "
        "log-probabilities; otherwise bounded by the smallest listed)"
    )
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
        except (KeyError, IndexError, TypeError):
            raise ScorerError(f"endpoint {self.url} returned no log-probabilities for the answer") from None
        if not isinstance(first, dict) or not isinstance(first.get("token"), str):
            raise ScorerError(f"endpoint {self.url} returned no first answer token")
        return first

    def _candidates(self, first: dict[str, Any]) -> list[tuple[str | None, float]]:
        """(text, log-probability) of the answer's first token and its listed alternatives."""
        alternatives = first.get("top_logprobs") or []
        if not isinstance(alternatives, list):
            raise ScorerError(f"endpoint {self.url} returned top_logprobs that are not a list")
        found = []
        for entry in [first, *alternatives]:
            if not isinstance(entry, dict):
                raise ScorerError(f"endpoint {self.url} returned a top_logprobs entry that is not an object")
            found.append((_token_text(entry), self._logprob(entry.get("logprob"))))
        return found

    def score(self, prompts: Sequence[str], continuation: str, progress: Progress | None = None) -> list[Scored]:
        results = []
        for index, prompt in enumerate(prompts):
            report(progress, index, len(prompts), "scoring")
            candidates = self._candidates(self._first(prompt))
            found = [value for text, value in candidates if text == continuation]
            if found:
                results.append(Scored(max(found)))
            else:  # not among the top: at most the smallest log-probability listed
                results.append(Scored(min(value for _, value in candidates), bound=True))
        report(progress, len(prompts), len(prompts), "scoring")
        return results

    def next_token(self, prompt: str) -> str:
        """The endpoint's own first answer token for ``prompt``, as text."""
        text = _token_text(self._first(prompt))
        if not text:
            raise ScorerError(
                f"endpoint {self.url} answered with an empty or partial first token; pass the target text"
            )
        return text


def _token_text(entry: dict[str, Any]) -> str | None:
    """A token's text: its ``bytes`` as UTF-8 when given (None when they are part of a character),
    else its ``token`` string."""
    raw = entry.get("bytes")
    if isinstance(raw, list) and raw and all(isinstance(b, int) and 0 <= b < 256 for b in raw):
        try:
            return bytes(raw).decode("utf-8")
        except UnicodeDecodeError:
            return None
    token = entry.get("token")
    return token if isinstance(token, str) else None
