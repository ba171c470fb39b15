"""Expected values for the OpenAI-compatible endpoints, computed independently with plain transformers.

Nothing here uses attnscope's scoring, chat rendering or occlusion code: the chat template is applied
by the tokenizer itself, the model runs as ``model.model(input_ids=...)``, log-probabilities are a
float64 log-softmax of its logits, and words are cut with a regular expression.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

import torch
from transformers.convert_slow_tokenizer import bytes_to_unicode

TOP = 20


def chat_ids(tokenizer: Any, messages: list[dict[str, str]]) -> list[int]:
    ids = tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=True, return_dict=False)
    return list(ids)


def next_logprobs(model: Any, ids: list[int]) -> torch.Tensor:
    """(vocab,) float64 log-softmax of the logits after ``ids``."""
    with torch.no_grad():
        logits = model.model(input_ids=torch.tensor([ids])).logits[0, -1]
    return torch.log_softmax(logits.double(), dim=-1)


def position_logprobs(model: Any, ids: list[int], start: int) -> list[float]:
    """log p(ids[i] | ids[:i]) for i from ``start`` on."""
    with torch.no_grad():
        logits = model.model(input_ids=torch.tensor([ids])).logits[0].double()
    logprobs = torch.log_softmax(logits, dim=-1)
    return [float(logprobs[i - 1, ids[i]]) for i in range(start, len(ids))]


def first_answer_logprobs(model: Any, prompt: str) -> torch.Tensor:
    """The distribution of the answer's first token when ``prompt`` is the only user message."""
    return next_logprobs(model, chat_ids(model.tokenizer, [{"role": "user", "content": prompt}]))


@cache
def _byte_of() -> dict[str, int]:
    return {char: byte for byte, char in bytes_to_unicode().items()}


def piece_bytes(tokenizer: Any, token_id: int) -> bytes:
    """The bytes of a byte-level BPE token (SmolLM2's tokenizer is one)."""
    return bytes(_byte_of()[char] for char in tokenizer.convert_ids_to_tokens(int(token_id)))


def words_removed(text: str) -> list[tuple[str, str]]:
    """(word, text without it) for every ``\\w+`` run and punctuation mark; a word takes the
    whitespace before it along."""
    found = []
    for match in re.finditer(r"\w+|[^\w\s]", text):
        begin = match.start()
        while begin > 0 and text[begin - 1].isspace():
            begin -= 1
        found.append((match.group(), text[:begin] + text[match.end() :]))
    return found


def chat_occlusion(model: Any, text: str) -> dict[str, Any]:
    """Occlusion of each word for the answer's first token, by hand: the scores (exact or, when the
    target leaves the top 20, from the 20th log-probability), the true drops, the bounded words."""
    base = first_answer_logprobs(model, text)
    target = int(base.argmax())
    scores, drops, bounded = [], [], []
    for index, (_, occluded) in enumerate(words_removed(text)):
        logprobs = first_answer_logprobs(model, occluded)
        value = float(logprobs[target])
        drops.append(float(base[target]) - value)
        rank = int((logprobs > logprobs[target]).sum())
        if rank >= TOP:
            bounded.append(index)
            value = float(logprobs.topk(TOP).values[-1])
        scores.append(float(base[target]) - value)
    return {
        "target": model.tokenizer.decode([target]),
        "base": float(base[target]),
        "scores": scores,
        "drops": drops,
        "bounded": bounded,
    }
