"""``POST /v1/chat/completions``: OpenAI-compatible chat completions over the loaded causal model.

The messages (roles ``system``, ``user``, ``assistant``; content strings) are rendered with the
tokenizer's chat template and the generation prompt (a tokenizer without a template: 400), then
decoded greedily (``temperature`` 0) for up to ``max_tokens`` (or ``max_completion_tokens``) tokens,
at most 256 (the default, or what the context leaves after the prompt if less), until the
end-of-sequence token or a stop string. Prompt plus ``max_tokens`` must fit the model's context;
that is checked before anything runs (400 ``too_long``).

``logprobs: true`` gives every generated token (the end-of-sequence token included, though its
text is not in ``message.content``) as ``{"token", "logprob", "bytes", "top_logprobs"}`` with the
``top_logprobs`` (0 to 20) most likely tokens at that step. ``token`` is the token decoded on its
own (a byte piece of a character reads U+FFFD), ``bytes`` its exact UTF-8 bytes. The compatibility
fields (``stop``, ``top_p``, ``seed``, ``user``, ...) are those of
:class:`attnscope.server.routes.openai_decoding.Sampling` (listed in :mod:`.openai`); any other field is refused (422).
"""

from __future__ import annotations

import functools
import re
import time
import uuid
from typing import Any, Literal

from fastapi import APIRouter
from jinja2 import TemplateError
from pydantic import Field, field_validator, model_validator

from attnscope.capture.tokens import MAX_TEXT_CHARS, check_text, render_chat, tokenize
from attnscope.errors import InputError
from attnscope.models.loaded import LoadedModel
from attnscope.server.host import ModelHost
from attnscope.server.routes.openai_decoding import MAX_COMPLETION_TOKENS, Answer, Sampling, causal, greedy, usage
from attnscope.server.schemas import Body

MAX_MESSAGES = 1000
MAX_TOP_LOGPROBS = 20


class ChatMessage(Body):
    role: Literal["system", "user", "assistant"]
    content: str = Field(..., max_length=MAX_TEXT_CHARS, description="text (may be empty)")

    @field_validator("content")
    @classmethod
    def _content(cls, value: str) -> str:
        return check_text(value) if value else value  # valid Unicode (no lone surrogates)


class ChatRequest(Sampling):
    messages: list[ChatMessage] = Field(..., min_length=1, max_length=MAX_MESSAGES)
    max_tokens: int | None = Field(
        None, gt=0, le=MAX_COMPLETION_TOKENS, description="default: 256, or what the context leaves if less"
    )
    max_completion_tokens: int | None = Field(None, gt=0, le=MAX_COMPLETION_TOKENS, description="same as max_tokens")
    logprobs: bool = False
    top_logprobs: int | None = Field(None, ge=0, le=MAX_TOP_LOGPROBS)

    @model_validator(mode="after")
    def _consistent(self) -> ChatRequest:
        if None not in (self.max_tokens, self.max_completion_tokens) and self.max_tokens != self.max_completion_tokens:
            raise ValueError("max_tokens and max_completion_tokens differ; send one of them")
        if self.top_logprobs is not None and not self.logprobs:
            raise ValueError("top_logprobs needs logprobs: true")
        return self

    def new_tokens(self, model: LoadedModel, prompt_tokens: int) -> int:
        """``max_tokens``; when not given, 256 or what the context leaves after the prompt if less."""
        given = self.max_tokens or self.max_completion_tokens
        if given:
            return given
        room = (model.arch.max_positions or MAX_COMPLETION_TOKENS + prompt_tokens) - prompt_tokens
        return max(1, min(MAX_COMPLETION_TOKENS, room))


# GPT-2's byte-level alphabet: the printable character that stands for each byte in a vocabulary piece.
@functools.cache
def _byte_level_alphabet() -> dict[str, int]:
    kept = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    shifted = [b for b in range(256) if b not in kept]
    table = {chr(b): b for b in kept}
    table.update({chr(256 + n): b for n, b in enumerate(shifted)})
    return table


_BYTE_FALLBACK = re.compile(r"<0x([0-9A-Fa-f]{2})>")


def _is_byte_level(tokenizer: Any) -> bool:
    if getattr(tokenizer, "byte_decoder", None):  # slow GPT-2 style tokenizers
        return True
    backend = getattr(tokenizer, "backend_tokenizer", None)
    return "ByteLevel" in repr(getattr(backend, "decoder", None))


def token_bytes(tokenizer: Any, token_id: int) -> bytes:
    """The exact bytes of one token: byte-level pieces mapped back to bytes, ``<0xNN>`` byte-fallback
    pieces as that byte, other (SentencePiece) pieces as UTF-8 with ``▁`` read as a space."""
    piece = str(tokenizer.convert_ids_to_tokens(int(token_id)))
    if _is_byte_level(tokenizer):
        table = _byte_level_alphabet()
        if all(ch in table for ch in piece):
            return bytes(table[ch] for ch in piece)
    fallback = _BYTE_FALLBACK.fullmatch(piece)
    if fallback:
        return bytes([int(fallback.group(1), 16)])
    return piece.replace("▁", " ").encode("utf-8")


def _entry(tokenizer: Any, token_id: int, logprob: float) -> dict[str, Any]:
    return {"token": tokenizer.decode([token_id]), "logprob": logprob, "bytes": list(token_bytes(tokenizer, token_id))}


def answer_logprobs(tokenizer: Any, answer: Answer) -> list[dict[str, Any]]:
    """``logprobs.content``: each generated token, its log-probability and the most likely tokens at its step."""
    content = []
    for token_id, value, top in zip(answer.ids, answer.logprobs, answer.tops, strict=True):
        entry = _entry(tokenizer, token_id, value)
        entry["top_logprobs"] = [_entry(tokenizer, i, v) for i, v in top]
        content.append(entry)
    return content


def prompt_ids(model: LoadedModel, request: ChatRequest) -> tuple[list[int], int]:
    """The chat template's rendering of the messages (with the generation prompt) as token ids, and
    the tokens to generate; both checked against the context."""
    messages = [m.model_dump() for m in request.messages]
    try:
        rendered, _ = render_chat(model.tokenizer, messages, add_generation_prompt=True)
    except (TemplateError, TypeError, KeyError) as error:  # a template's own refusal (raise_exception, ...)
        raise InputError(f"the chat template refused these messages: {error}") from None
    ids = [t.id for t in tokenize(model.tokenizer, check_text(rendered), add_special_tokens=False)]
    max_tokens = request.new_tokens(model, len(ids))
    model.check_length(len(ids) + max_tokens, "the messages with max_tokens")
    return ids, max_tokens


def chat_completion(model: LoadedModel, request: ChatRequest) -> dict[str, Any]:
    request.check_decoding()
    stops = request.stops()
    ids, max_tokens = prompt_ids(model, request)
    answer = greedy(model, ids, max_tokens, stops, request.top_logprobs or 0)
    logprobs = {"content": answer_logprobs(model.tokenizer, answer)} if request.logprobs else None
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": request.model or model.spec,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": answer.text},
                "logprobs": logprobs,
                "finish_reason": answer.finish_reason,
            }
        ],
        "usage": usage(len(ids), answer.n_generated),
    }


def add_routes(api: APIRouter, host: ModelHost) -> None:
    @api.post("/chat/completions", summary="OpenAI-compatible chat completions with log-probabilities (greedy)")
    def chat_completions(request: ChatRequest) -> dict[str, Any]:
        return chat_completion(causal(host, "chat completions"), request)
