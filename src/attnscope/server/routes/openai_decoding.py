"""What both OpenAI-compatible endpoints share: the decoding fields of a request and greedy decoding.

:class:`Sampling` is the strict body both requests extend (see :mod:`.openai` for the fields it
accepts); :func:`greedy` decodes with the in-process model through :mod:`attnscope.capture.scoring`
and applies stop strings.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from pydantic import Field, field_validator

from attnscope.capture import scoring
from attnscope.capture.tokens import check_text
from attnscope.errors import InputError
from attnscope.models.loaded import LoadedModel
from attnscope.server.host import ModelHost
from attnscope.server.schemas import Body

MAX_COMPLETION_TOKENS = 256
MAX_STOPS = 4
Stop = str | list[str] | None


class Sampling(Body):
    """The decoding fields both requests share: strict, no unknown fields, no NaN (:mod:`.openai` lists them)."""

    model: str | None = Field(None, max_length=500, description="ignored (the loaded model answers); echoed back")
    temperature: float = Field(0.0, ge=0, le=2, description="must be 0: greedy decoding")
    top_p: float = Field(1.0, gt=0, le=1, description="accepted and ignored (greedy)")
    n: int = Field(1, ge=1, le=1)
    seed: int | None = Field(None, description="accepted and ignored (greedy decoding is deterministic)")
    user: str | None = Field(None, max_length=500, description="accepted and ignored")
    stream: bool = Field(False, description="must be false: no streaming")
    presence_penalty: float = Field(0.0, ge=-2, le=2, description="must be 0")
    frequency_penalty: float = Field(0.0, ge=-2, le=2, description="must be 0")
    stop: Stop = Field(None, description=f"up to {MAX_STOPS} strings; the text ends before the first one")

    @field_validator("stop")
    @classmethod
    def _stop(cls, value: Stop) -> Stop:
        stops = [value] if isinstance(value, str) else list(value or [])
        if len(stops) > MAX_STOPS or not all(stops):
            raise ValueError(f"give 1 to {MAX_STOPS} non-empty strings")
        for stop in stops:
            check_text(stop)
        return value

    def stops(self) -> list[str]:
        return [self.stop] if isinstance(self.stop, str) else list(self.stop or [])

    def check_decoding(self) -> None:
        if self.temperature != 0:
            raise InputError("this endpoint decodes greedily: temperature must be 0")
        if self.stream:
            raise InputError("streaming is not supported: send stream: false")
        if self.presence_penalty or self.frequency_penalty:
            raise InputError("presence and frequency penalties are not supported: send 0")


def causal(host: ModelHost, endpoint: str) -> LoadedModel:
    """The loaded model, if it is a causal LM with a next-token head (else a clear 400)."""
    model = host.current()
    if model.kind != "causal" or not model.has_lm_head:
        raise InputError(f"{endpoint} need a causal language model; {model.name} is a {model.kind} model")
    return model


@dataclass
class Answer:
    ids: list[int]  # generated tokens: an end-of-sequence token stays, what follows a stop string is cut
    logprobs: list[float]  # log p of each of them
    tops: list[list[tuple[int, float]]]  # the k most likely (id, log p) at each of their steps
    text: str  # their text (special tokens left out), before the first stop string
    finish_reason: str  # "stop" (end of sequence or a stop string) or "length"
    n_generated: int  # every token the model produced


def eos_ids(model: LoadedModel) -> set[int]:
    """The end-of-sequence ids: the generation config's and the tokenizer's."""
    found = model.model.generation_config.eos_token_id
    ids = {found} if isinstance(found, int) else set(found or [])
    if model.tokenizer.eos_token_id is not None:
        ids.add(int(model.tokenizer.eos_token_id))
    return ids


def greedy(model: LoadedModel, ids: list[int], max_tokens: int, stops: list[str], k: int = 0) -> Answer:
    """Greedy decoding after ``ids`` — the argmax of the model's own next-token distribution at each
    step (no repetition penalty or other generation-config processors), one cached forward per token —
    until an end-of-sequence token, ``max_tokens`` tokens or a stop string."""
    if not max_tokens:
        return Answer([], [], [], "", "stop", 0)
    ends = eos_ids(model)
    generated: list[int] = []
    chosen: list[float] = []
    tops: list[list[tuple[int, float]]] = []
    device = scoring.device_of(model)
    with model.lock, torch.inference_mode():
        hidden, cache = scoring.cache_of(model, torch.tensor([ids], device=device))
        while True:
            logprobs = scoring.log_probs(model, hidden[0, -1])  # (vocab,)
            token = int(logprobs.argmax())
            generated.append(token)
            chosen.append(float(logprobs[token]))
            best = logprobs.topk(k) if k else None
            tops.append(list(zip(best.indices.tolist(), best.values.tolist(), strict=True)) if best is not None else [])
            if token in ends or len(generated) == max_tokens:
                break
            step = torch.tensor([[token]], device=device)
            hidden, cache = scoring.hidden_states(model, input_ids=step, cache=cache)
    n_generated = len(generated)
    finish = "stop" if generated[-1] in ends else "length"
    decode = model.tokenizer.decode
    text = decode(generated, skip_special_tokens=True)
    cuts = [text.find(s) for s in stops if s in text]
    if cuts:
        cut = min(cuts)
        keep = 0  # the tokens whose text begins before the stop string
        while keep < len(generated) and len(decode(generated[:keep], skip_special_tokens=True)) < cut:
            keep += 1
        generated, chosen, tops = generated[:keep], chosen[:keep], tops[:keep]
        text, finish = text[:cut], "stop"
    return Answer(generated, chosen, tops, text, finish, n_generated)


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }
