"""OpenAI-compatible endpoints over the loaded causal model: ``POST /v1/completions`` here,
``POST /v1/chat/completions`` in :mod:`.openai_chat` (both registered by :func:`router`).

``/v1/completions`` is enough of the legacy completions API for scoring tools (lm-evaluation-harness
style, and attnscope's own ``OpenAICompletionsScorer``): ``echo`` returns the prompt's tokens with
their log-probabilities, ``logprobs: k`` adds the top-k alternatives at each position, ``max_tokens``
greedy-decodes up to 256 new tokens. Token strings are the characters each token covers and
``text_offset`` their character offsets, so a client can split prompt from continuation exactly.
Tokens inserted by the tokenizer (BOS) are context only, not echoed; a generated end-of-sequence
token is listed in ``logprobs`` but not in ``text``.

Both endpoints decode greedily: ``temperature`` must be 0 (the default here; OpenAI's is 1).
Request bodies are strict (a number is not a string, NaN and infinities are refused: 422) and
unknown fields are refused (422, naming the field). The compatibility fields of :class:`Sampling`
are accepted: ``stop`` (up to 4 strings) is applied; ``top_p``, ``seed`` and ``user`` are accepted
and ignored (greedy decoding is deterministic); ``n`` must be 1, ``stream`` false and the
presence/frequency penalties 0 (else 400).
"""

from __future__ import annotations

import secrets
import time
import uuid
from typing import Any

from fastapi import APIRouter, Depends, Header
from pydantic import Field, field_validator

from attnscope.capture.scoring import position_log_probs
from attnscope.capture.tokens import MAX_TEXT_CHARS, Token, check_text, tokenize
from attnscope.errors import AuthenticationError, InputError
from attnscope.models.loaded import LoadedModel
from attnscope.server.host import ModelHost
from attnscope.server.routes import openai_chat
from attnscope.server.routes.openai_decoding import MAX_COMPLETION_TOKENS, Sampling, causal, greedy, usage

MAX_PROMPTS = 64


def bearer(api_key: str | None) -> Any:
    """A dependency that checks ``Authorization: Bearer <api_key>`` (nothing when no key is set)."""

    def check(authorization: str | None = Header(None)) -> None:
        if api_key is None:
            return
        if authorization is None or not secrets.compare_digest(authorization.encode(), f"Bearer {api_key}".encode()):
            raise AuthenticationError("missing or wrong API key (send Authorization: Bearer <key>)")

    return check


class CompletionRequest(Sampling):
    prompt: str | list[str] = Field(..., description=f"a text, or 1 to {MAX_PROMPTS} texts")
    max_tokens: int = Field(16, ge=0, le=MAX_COMPLETION_TOKENS)
    echo: bool = False
    logprobs: int | None = Field(None, ge=0, le=20)

    @field_validator("prompt")
    @classmethod
    def _prompt(cls, value: str | list[str]) -> str | list[str]:
        for text in [value] if isinstance(value, str) else value:
            check_text(text)  # not empty, valid Unicode, within the size limit
        return value


def _top_row(tokenizer: Any, top: list[tuple[int, float]] | None) -> dict[str, float] | None:
    """Top-k ``(id, log p)`` pairs as the legacy API's ``{token text: log p}``."""
    if top is None:
        return None
    row: dict[str, float] = {}
    for token_id, value in top:
        row.setdefault(tokenizer.decode([token_id]), value)  # byte pieces may share "�"
    return row


def _prompt_tokens(model: LoadedModel, prompt: str, max_tokens: int) -> list[Token]:
    """The prompt's tokens, checked against the context (with room for ``max_tokens``)."""
    tokens = tokenize(model.tokenizer, prompt)
    if not tokens:
        raise InputError("the prompt gives no tokens")
    model.check_length(len(tokens) + max_tokens, "the prompt with max_tokens")
    return tokens


def _complete(
    model: Any, prompt: str, tokens: list[Token], stops: list[str], request: CompletionRequest
) -> dict[str, Any]:
    ids = [t.id for t in tokens]
    k = request.logprobs
    answer = greedy(model, ids, request.max_tokens, stops, k or 0)
    logprobs = None
    if k is not None:
        pieces: list[str] = []
        offsets: list[int] = []
        chosen: list[float | None] = []
        top_rows: list[Any] = []
        if request.echo:  # the prompt's tokens with characters (not an inserted BOS)
            values, tops = position_log_probs(model, ids, k)
            for index, token in enumerate(tokens):
                if token.start is not None:
                    pieces.append(prompt[token.start : token.end])
                    offsets.append(token.start)
                    chosen.append(values[index])
                    top_rows.append(_top_row(model.tokenizer, tops[index]))
        cursor = len(prompt) if request.echo else 0
        for token_id, value, top in zip(answer.ids, answer.logprobs, answer.tops, strict=True):
            piece = model.tokenizer.decode([token_id])
            pieces.append(piece)
            offsets.append(cursor)
            cursor += len(piece)
            chosen.append(value)
            top_rows.append(_top_row(model.tokenizer, top if k else None))
        logprobs = {"tokens": pieces, "token_logprobs": chosen, "top_logprobs": top_rows, "text_offset": offsets}
    return {
        "text": (prompt if request.echo else "") + answer.text,
        "logprobs": logprobs,
        "finish_reason": answer.finish_reason,
        "n_prompt": len(ids),
        "n_generated": answer.n_generated,
    }


def router(host: ModelHost, api_key: str | None = None) -> APIRouter:
    """``/v1/completions`` and ``/v1/chat/completions``, behind the bearer key when one is set."""
    api = APIRouter(prefix="/v1", tags=["openai"], dependencies=[Depends(bearer(api_key))])

    @api.post("/completions", summary="OpenAI-compatible completions with log-probabilities (greedy)")
    def completions(request: CompletionRequest) -> dict[str, Any]:
        model = causal(host, "completions")
        request.check_decoding()
        prompts = [request.prompt] if isinstance(request.prompt, str) else request.prompt
        if not 1 <= len(prompts) <= MAX_PROMPTS:
            raise InputError(f"send between 1 and {MAX_PROMPTS} prompts")
        if sum(len(p) for p in prompts) > MAX_TEXT_CHARS:
            raise InputError(f"the prompts hold over {MAX_TEXT_CHARS:,} characters together")
        stops = request.stops()
        tokenized = [_prompt_tokens(model, prompt, request.max_tokens) for prompt in prompts]  # all checked first
        choices = []
        prompt_tokens = completion_tokens = 0
        for index, (prompt, tokens) in enumerate(zip(prompts, tokenized, strict=True)):
            done = _complete(model, prompt, tokens, stops, request)
            prompt_tokens += done.pop("n_prompt")
            completion_tokens += done.pop("n_generated")
            choices.append({"index": index, **done})
        return {
            "id": f"cmpl-{uuid.uuid4().hex[:24]}",
            "object": "text_completion",
            "created": int(time.time()),
            "model": request.model or model.spec,
            "choices": choices,
            "usage": usage(prompt_tokens, completion_tokens),
        }

    openai_chat.add_routes(api, host)
    return api
