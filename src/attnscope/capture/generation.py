"""``generate(model, text)``: the model's own generation — its KV cache, its sampling — recorded.

Greedy and sampled generation run ``model.generate`` once with the recording attention function
(:mod:`.qk`): each step hands over its new query row and the new key row; the stash grows with the
cache (keys are kept from the steps, so sliding-window caches that evict old keys lose nothing).
The generated tokens are the ones ``model.generate`` gives with the same settings: the recording
calls the stock SDPA function and draws no random numbers. Per step a stopping criterion (which
never stops anything) reduces the step's raw logits to the chosen token's probability and the top-k,
and, when sampling, the processed scores to the probability the sampler used; no ``steps x vocab``
array is kept. After the last step the last token goes through the model too, so every position
of prompt + generation has its attention row and its prediction.

Beam search runs ``model.generate`` as it is, with every running beam per step recorded as a tree
(:mod:`.beams`), then records the best beam in one teacher-forced forward (:func:`.engine.capture_tokens`):
for a causal model every attention row and prediction of a sequence is the same whether its tokens
were fed one by one or at once.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import fields
from typing import Any

import torch

from attnscope.capture import qk
from attnscope.capture.beams import BeamRecorder
from attnscope.capture.decoding import Settings, check_settings, eos_ids, stop_kwargs, stop_reason
from attnscope.capture.engine import capture_tokens, check_complete, predictions_of, prompt_tokens, target_start
from attnscope.capture.predictions import Predictions, decode_ids
from attnscope.capture.scoring import cache_argument, lm_logits
from attnscope.capture.sources import QKSource
from attnscope.capture.stash import Stash
from attnscope.capture.tokens import Part, Token, generated_tokens
from attnscope.capture.trace import GenerationTrace, Step
from attnscope.errors import InputError, UnsupportedError
from attnscope.models.loaded import LoadedModel
from attnscope.models.provenance import new_record, stash_fields, text_fields, utc_now
from attnscope.progress import Progress, adapt


def generate(
    model: LoadedModel,
    text: str | bytes | None = None,
    *,
    messages: list[dict[str, str]] | None = None,
    max_new_tokens: int = 64,
    do_sample: bool = False,
    temperature: float | None = None,
    top_p: float | None = None,
    top_k: int | None = None,
    seed: int | None = None,
    num_beams: int = 1,
    stop: Sequence[str] | None = None,
    candidates: int = 10,
    stash: str = "auto",
    stash_budget: int | None = None,
    progress: Callable[..., None] | None = None,
    on_token: Callable[[int, int, float], None] | None = None,
) -> GenerationTrace:
    """Generate after ``text`` (or chat ``messages``) and record every step (see the module docstring).

    Args:
        model: a causal LM or an encoder-decoder from :func:`attnscope.load_model`.
        text / messages: the prompt; ``messages`` (``[{"role", "content"}, ...]``) go through the
            tokenizer's chat template with the generation prompt, each message a part of the trace.
        max_new_tokens: at most this many tokens (1 … ``MAX_NEW_TOKENS``).
        do_sample, temperature, top_p, top_k: sampling as ``model.generate`` does it (the model's
            generation config supplies what is not given); greedy by default.
        seed: seeds torch's generator before sampling: the same seed gives the same tokens.
        num_beams: beam search when > 1 (the best beam is recorded, every beam in ``beam_tree``).
        stop: strings that end the generation once generated (the string stays in the text).
        candidates: how many top candidates to keep per position (1 … 1000).
        stash, stash_budget: where the recorded queries/keys live (as for :func:`capture`).
        progress: ``progress(done, total, stage)`` after each step; may raise ``CancelledError``.
        on_token: ``on_token(step, token_id, prob)`` as each token is chosen (greedy and sampling;
            beam search knows its best beam only at the end), for streaming.
    """
    started_at = utc_now()
    settings = check_settings(max_new_tokens, do_sample, temperature, top_p, top_k, seed, num_beams, stop)
    if model.kind == "masked":
        raise UnsupportedError(f"generate needs a causal or encoder-decoder language model; {model.name} is an encoder")
    if not model.has_lm_head:
        raise UnsupportedError(f"{model.name} has no language-model head to generate with")
    if isinstance(candidates, bool) or not isinstance(candidates, int) or not 1 <= candidates <= 1000:
        raise InputError("candidates must be a whole number from 1 to 1000")
    keeper = Stash(stash, stash_budget, model.device)
    text, tokens, parts = prompt_tokens(model, text, messages)
    model.check_length(len(tokens) + (settings.max_new_tokens if model.kind == "causal" else 0))
    report = adapt(progress)
    with model.lock:
        if settings.seed is not None:
            torch.manual_seed(settings.seed)
        probe = None
        if settings.num_beams == 1:
            probe = _StepProbe(candidates, settings.do_sample, settings.max_new_tokens, report, on_token)
        if probe is not None and model.kind == "causal":
            trace = _recorded(model, text, tokens, parts, settings, probe, keeper)
        else:
            trace = _replayed(model, text, tokens, parts, settings, candidates, keeper, report, probe)
    trace.provenance = _provenance(model, trace, bool(parts), keeper, settings, candidates, started_at)
    return trace


_TINY = float(torch.finfo(torch.float32).tiny)
_RECORDED = {"backend": "qk", "predict": "last", "layers_captured": "all"}  # how every generation is captured


class _StepProbe:
    """A stopping criterion that stops nothing: after each step it reduces the step's raw logits
    (from the model's forward) and processed scores to what a :class:`Step` needs."""

    def __init__(
        self,
        k: int,
        sampling: bool,
        total: int,
        report: Progress | None,
        on_token: Callable[[int, int, float], None] | None = None,
    ) -> None:
        self.k, self.sampling, self.total, self.report, self.on_token = k, sampling, total, report, on_token
        self.logits: torch.Tensor | None = None  # (vocab,) the latest forward's last row
        self.rows: list[tuple[int, torch.Tensor, torch.Tensor, float, float | None]] = []

    def keep_logits(self, _module: Any, _args: Any, output: Any) -> None:
        self.logits = output.logits[0, -1]

    def __call__(self, input_ids: torch.Tensor, scores: Any, **_: Any) -> torch.Tensor:
        chosen = int(input_ids[0, -1])
        assert self.logits is not None
        raw = self.logits.to(torch.float32)
        log_norm = torch.logsumexp(raw, dim=-1)
        values, ids = torch.topk(raw, k=min(self.k, raw.shape[-1]))
        sampled = None
        if self.sampling and scores:  # the processed scores the sampler drew from (output_scores)
            latest = scores[-1]
            sampled = float(torch.softmax(latest[0].to(torch.float32), dim=-1)[chosen])
            latest.set_()  # reduced: let its (vocab,) storage go rather than keep steps x vocab floats
        self.rows.append(
            (chosen, ids.cpu(), torch.exp(values - log_norm).cpu(), float(raw[chosen] - log_norm), sampled)
        )
        self.logits = None
        if self.on_token is not None:
            self.on_token(len(self.rows) - 1, chosen, math.exp(self.rows[-1][3]))
        if self.report is not None:
            self.report(len(self.rows), self.total, "generating")
        return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)


def _recorded(
    model: LoadedModel,
    text: str,
    tokens: list[Token],
    parts: list[Part],
    settings: Settings,
    probe: _StepProbe,
    keeper: Stash,
) -> GenerationTrace:
    from transformers import DynamicCache, StoppingCriteriaList

    hf = model.model
    device = next(hf.parameters()).device
    prompt = torch.tensor([[t.id for t in tokens]], device=device)
    qk.ensure_registered()
    recorder = qk.QKRecorder.for_model(hf, "causal", None, keeper)
    recorder.capacity = settings.max_new_tokens  # decode steps and the last token's forward: one row each
    k = probe.k
    states: list[torch.Tensor] = []  # final hidden states, (tokens, hidden) per forward call

    def keep_states(_module: Any, _args: Any, output: Any) -> None:
        states.append((output.last_hidden_state if hasattr(output, "last_hidden_state") else output[0])[0])

    cache = DynamicCache(config=hf.config)  # dynamic: keys appended step by step, never a padded static buffer
    hooks = [hf.base_model.register_forward_hook(keep_states), hf.register_forward_hook(probe.keep_logits)]
    try:
        with torch.inference_mode(), qk.attention_implementation(hf, qk.QK_ATTENTION), recorder.active():
            out = hf.generate(
                prompt,
                attention_mask=torch.ones_like(prompt),
                stopping_criteria=StoppingCriteriaList([probe]),
                return_dict_in_generate=True,
                output_scores=settings.do_sample,
                **{cache_argument(hf): cache},
                **stop_kwargs(model, settings),
                **settings.generate_kwargs(),
            )
            new_ids = [int(i) for i in out.sequences[0, prompt.shape[1] :]]
            total = prompt.shape[1] + len(new_ids)
            seen = recorder.query_rows()
            if seen == {total - 1}:  # the last token through the model too: its row and the prediction after it
                last = torch.tensor([[new_ids[-1]]], device=device)
                mask = torch.ones(1, total, dtype=torch.long, device=device)
                hf(input_ids=last, attention_mask=mask, use_cache=True, logits_to_keep=1, **{cache_argument(hf): cache})
            elif seen != {total}:  # transformers may run one forward past the stop (deferred stop checks): fine
                raise UnsupportedError(f"the recording saw {sorted(seen)} query rows for {total} tokens")
    finally:
        for hook in hooks:
            hook.remove()
    keeper.finish()
    recorder.assemble()
    check_complete(model, recorder, None)
    del cache, out
    probe.rows = probe.rows[: len(new_ids)]
    full_text, all_tokens = _joined(model, text, tokens, new_ids)
    hidden = torch.cat(states, dim=0)[: len(all_tokens)]  # (tokens, hidden)
    predictions = predictions_of(
        model, lambda begin, end: lm_logits(hf, hidden[begin:end]), all_tokens, None, k, now="last"
    )
    steps = _steps_from_probe(probe.rows, len(tokens), predictions, model)
    source = QKSource(records=recorder.records, masks=recorder.masks, biases=recorder.biases)
    return GenerationTrace(
        text=full_text,
        tokens=all_tokens,
        model=model.info(),
        source=source,
        backend="qk",
        predictions=predictions,
        provenance={},  # made by generate() once the trace is complete
        parts=_parts(parts, len(text), len(full_text)),
        prompt_length=len(tokens),
        prompt_chars=len(text),
        steps=steps,
        stop_reason=stop_reason(model, settings, new_ids, full_text[len(text) :]),
        settings=settings.to_dict(),
        windows=_windows(source),
    )


def _steps_from_probe(
    rows: list[tuple[int, torch.Tensor, torch.Tensor, float, float | None]],
    prompt_length: int,
    predictions: Predictions | None,
    model: LoadedModel,
) -> list[Step]:
    """Steps from the probe's rows; the rows also fill the predictions after each step's query."""
    steps: list[Step] = []
    total = 0.0
    for number, (chosen, ids, probs, logprob, sampled) in enumerate(rows):
        total += logprob
        position = prompt_length + number
        steps.append(Step(number, position, chosen, math.exp(logprob), total, sampled))
        if predictions is not None:
            row = position - 1
            count = min(predictions.k, len(ids))
            predictions.top_probs[row, :count] = probs[:count].numpy()
            predictions.next_prob[row] = math.exp(logprob)
            predictions.top_ids[row, :count] = ids[:count].numpy()
    if predictions is not None and rows:
        predictions.strings.update(decode_ids(model.tokenizer, predictions.top_ids[predictions.top_ids >= 0]))
    return steps


def _replayed(
    model: LoadedModel,
    text: str,
    tokens: list[Token],
    parts: list[Part],
    settings: Settings,
    k: int,
    keeper: Stash,
    report: Progress | None,
    probe: _StepProbe | None,
) -> GenerationTrace:
    """``model.generate`` as it is, recorded afterwards in one teacher-forced capture: beam search
    (the best beam) and encoder-decoders (the encoder input, and the decoder's start token + answer
    as target). A ``probe`` (greedy and sampling) gives the steps' probabilities as generate saw them."""
    from transformers import StoppingCriteriaList

    hf = model.model
    device = next(hf.parameters()).device
    prompt = torch.tensor([[t.id for t in tokens]], device=device)
    seq2seq = model.kind == "seq2seq"
    if report is not None and probe is None:
        report(0, settings.max_new_tokens, f"beam search ({settings.num_beams} beams)")
    tree = None
    if probe is not None:
        extra: dict[str, Any] = {"stopping_criteria": StoppingCriteriaList([probe])}
        hooks = [hf.register_forward_hook(probe.keep_logits)]
    else:  # beam search: every running beam per step (see .beams)
        tree = BeamRecorder(settings, eos_ids(model), model.tokenizer)
        extra, hooks = tree.generate_kwargs(), [hf.register_forward_hook(tree.keep_logprobs)]
    try:
        with torch.inference_mode():
            out = hf.generate(
                prompt,
                attention_mask=torch.ones_like(prompt),
                return_dict_in_generate=True,
                output_scores=probe is not None and settings.do_sample,
                **extra,
                **stop_kwargs(model, settings),
                **settings.generate_kwargs(),
            )
    finally:
        for hook in hooks:
            hook.remove()
    first = 1 if seq2seq else prompt.shape[1]  # where the answer starts in the predicted sequence
    new_ids = [int(i) for i in out.sequences[0, first:]]
    start_id = int(out.sequences[0, 0])  # encoder-decoders: the start token generate used
    beams = getattr(out, "beam_indices", None) if probe is None else None
    beam_row = [int(b) for b in beams[0, : len(new_ids)]] if beams is not None else [None] * len(new_ids)
    del out
    beam_tree = tree.finish(new_ids) if tree is not None else []
    if seq2seq:
        answer, answer_tokens = generated_tokens(model.tokenizer, [], new_ids, first_index=1, offset=0)
        target_tokens = [*target_start(model, start_id), *answer_tokens]
        trace = capture_tokens(model, text, tokens, parts, (target_tokens, answer), "qk", None, k, "last", keeper, None)
        full_text = text
    else:
        full_text, all_tokens = _joined(model, text, tokens, new_ids)
        answer = full_text[len(text) :]
        chosen_parts = _parts(parts, len(text), len(full_text))
        trace = capture_tokens(
            model, full_text, all_tokens, chosen_parts, (None, None), "qk", None, k, "last", keeper, None
        )
    predictions = trace.predictions
    assert predictions is not None and isinstance(trace.source, QKSource)
    if probe is not None:
        steps = _steps_from_probe(probe.rows, first, predictions, model)
    else:
        predictions.ensure(first - 1, first + len(new_ids) - 1)
        steps = []
        total = 0.0
        for number, chosen in enumerate(new_ids):
            prob = float(predictions.next_prob[first + number - 1])
            total += math.log(max(prob, _TINY))  # a probability that underflowed float32 counts as the smallest one
            parent = beam_row[number - 1] if number > 0 else None
            steps.append(Step(number, first + number, chosen, prob, total, None, beam_row[number], parent))
        if report is not None:
            report(len(new_ids), settings.max_new_tokens, "beam search")
    base = {f.name: getattr(trace, f.name) for f in fields(trace)}
    base["provenance"] = {}  # made by generate() once the trace is complete
    return GenerationTrace(
        **base,
        prompt_length=first,
        prompt_chars=len(text),
        steps=steps,
        stop_reason=stop_reason(model, settings, new_ids, answer),
        settings=settings.to_dict(),
        windows=_windows(trace.source),
        beam_tree=beam_tree,
    )


def _windows(source: QKSource) -> list[int | None]:
    """Each decoder layer's sliding window as the model ran it (None: full attention)."""
    layers = sorted(layer for stack, layer in source.records if stack == "decoder")
    return [source.records[("decoder", layer)].window for layer in layers]


def _parts(parts: list[Part], prompt_chars: int, total_chars: int) -> list[Part]:
    """The prompt's parts (chat: one per message; plain text: ``prompt``) and ``answer``."""
    named = parts or [Part("prompt", 0, prompt_chars)]
    return [*named, Part("answer", prompt_chars, total_chars)] if total_chars > prompt_chars else named


def _joined(model: LoadedModel, text: str, tokens: list[Token], new_ids: list[int]) -> tuple[str, list[Token]]:
    """The text and tokens of prompt + generation (generated spans counted from the prompt's end)."""
    generated, new_tokens = generated_tokens(
        model.tokenizer, [t.id for t in tokens], new_ids, first_index=len(tokens), offset=len(text)
    )
    return text + generated, [*tokens, *new_tokens]


def _provenance(
    model: LoadedModel, trace: GenerationTrace, chat: bool, keeper: Stash, settings: Settings, k: int, started_at: str
) -> dict[str, Any]:
    """The generation's record: its text is prompt + generated text, its tokens all of them."""
    return new_record(
        model.provenance,
        started_at=started_at,
        captured_at=utc_now(),
        seed=settings.seed if settings.do_sample else None,
        **text_fields(trace.text, len(trace.tokens), chat=chat),
        **stash_fields(keeper.describe()),
        top_k=k,
        **_RECORDED,
        generation=settings.to_dict(),
        stop_reason=trace.stop_reason,
    )
