"""An OpenAI-compatible ``POST /v1/completions`` over the loaded causal model.

Enough of the legacy completions API for scoring tools (lm-evaluation-harness style, and
attnscope's own ``OpenAICompletionsScorer``): ``echo`` returns the prompt's tokens with their
log-probabilities, ``logprobs: k`` adds the top-k alternatives at each position, ``max_tokens``
greedy-decodes up to 256 new tokens (``temperature`` must be 0: no sampling). Token strings are
the characters each token covers and ``text_offset`` their character offsets, so a client can
split prompt from continuation exactly. Tokens inserted by the tokenizer (BOS) are context only,
not echoed.
"""

from __future__ import annotations

import secrets
import time
import uuid
from typing import Any

import torch
from fastapi import APIRouter, Depends, Header
from pydantic import BaseModel, Field

from attnscope.capture.scoring import position_log_probs
from attnscope.capture.tokens import check_text, tokenize
from attnscope.errors import AuthenticationError, InputError
from attnscope.server.host import ModelHost

MAX_COMPLETION_TOKENS = 256


def bearer(api_key: str | None) -> Any:
    """A dependency that checks ``Authorization: Bearer <api_key>`` (nothing when no key is set)."""

    def check(authorization: str | None = Header(None)) -> None:
        if api_key is None:
            return
        if authorization is None or not secrets.compare_digest(authorization.encode(), f"Bearer {api_key}".encode()):
            raise AuthenticationError("missing or wrong API key (send Authorization: Bearer <key>)")

    return check


class CompletionRequest(BaseModel):
    prompt: str | list[str]
    model: str | None = None
    max_tokens: int = Field(16, ge=0, le=MAX_COMPLETION_TOKENS)
    echo: bool = False
    logprobs: int | None = Field(None, ge=0, le=20)
    temperature: float = 0.0
    n: int = Field(1, ge=1, le=1)


def _logprob_block(model: Any, ids: list[int], k: int | None) -> tuple[list[float | None], list[Any]]:
    """log p(ids[i] | ids[:i]) for every position (None for the first) and top-k dicts."""
    values, tops = position_log_probs(model, ids, k)
    rows: list[Any] = []
    for top in tops:
        if top is None:
            rows.append(None)
            continue
        row: dict[str, float] = {}
        for token_id, value in top:
            row.setdefault(model.tokenizer.decode([token_id]), value)  # byte pieces may share "�"
        rows.append(row)
    return values, rows


def _complete(model: Any, prompt: str, request: CompletionRequest) -> dict[str, Any]:
    prompt = check_text(prompt)
    tokens = tokenize(model.tokenizer, prompt)
    if not tokens:
        raise InputError("the prompt gives no tokens")
    model.check_length(len(tokens) + request.max_tokens, "the prompt with max_tokens")
    ids = [t.id for t in tokens]
    generated: list[int] = []
    if request.max_tokens:
        hf = model.model
        device = next(hf.parameters()).device
        with model.lock, torch.inference_mode():
            output = hf.generate(
                torch.tensor([ids], device=device),
                max_new_tokens=request.max_tokens,
                do_sample=False,
                pad_token_id=model.tokenizer.pad_token_id or model.tokenizer.eos_token_id,
            )
        generated = output[0, len(ids) :].tolist()
    text = model.tokenizer.decode(generated, skip_special_tokens=True) if generated else ""
    logprobs = None
    if request.logprobs is not None:
        values, tops = _logprob_block(model, ids + generated, request.logprobs)
        shown = [(i, t) for i, t in enumerate(tokens) if t.start is not None]  # echoed: tokens with characters
        pieces: list[str] = []
        offsets: list[int] = []
        chosen: list[float | None] = []
        top_rows: list[Any] = []
        if request.echo:
            for index, token in shown:
                pieces.append(prompt[token.start : token.end])
                offsets.append(int(token.start))  # type: ignore[arg-type]
                chosen.append(values[index])
                top_rows.append(tops[index])
        cursor = len(prompt) if request.echo else 0
        for step, token_id in enumerate(generated):
            piece = model.tokenizer.decode([token_id])
            pieces.append(piece)
            offsets.append(cursor)
            cursor += len(piece)
            chosen.append(values[len(ids) + step])
            top_rows.append(tops[len(ids) + step])
        logprobs = {"tokens": pieces, "token_logprobs": chosen, "top_logprobs": top_rows, "text_offset": offsets}
    finish = "length" if request.max_tokens and len(generated) == request.max_tokens else "stop"
    return {
        "text": (prompt if request.echo else "") + text,
        "logprobs": logprobs,
        "finish_reason": finish,
        "n_prompt": len(ids),
        "n_generated": len(generated),
    }


def router(host: ModelHost, api_key: str | None = None) -> APIRouter:
    api = APIRouter(prefix="/v1", tags=["openai"], dependencies=[Depends(bearer(api_key))])

    @api.post("/completions", summary="OpenAI-compatible completions with log-probabilities (greedy)")
    def completions(request: CompletionRequest) -> dict[str, Any]:
        model = host.current()
        if model.kind != "causal" or not model.has_lm_head:
            raise InputError(f"completions need a causal language model; {model.name} is a {model.kind} model")
        if request.temperature != 0:
            raise InputError("this endpoint decodes greedily: temperature must be 0")
        prompts = [request.prompt] if isinstance(request.prompt, str) else request.prompt
        if not 1 <= len(prompts) <= 64:
            raise InputError("send between 1 and 64 prompts")
        choices = []
        prompt_tokens = completion_tokens = 0
        for index, prompt in enumerate(prompts):
            done = _complete(model, prompt, request)
            prompt_tokens += done.pop("n_prompt")
            completion_tokens += done.pop("n_generated")
            choices.append({"index": index, **done})
        return {
            "id": f"cmpl-{uuid.uuid4().hex[:24]}",
            "object": "text_completion",
            "created": int(time.time()),
            "model": model.spec,
            "choices": choices,
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }

    return api
