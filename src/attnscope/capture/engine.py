"""``capture(model, text)``: one forward pass, recorded into a :class:`Trace`."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, Literal

import numpy as np
import torch

from attnscope.capture import qk, scoring
from attnscope.capture.predictions import Predictions, decode_ids
from attnscope.capture.reads import AttentionSource
from attnscope.capture.scoring import lm_logits, rows_per_chunk
from attnscope.capture.selection import resolve_index
from attnscope.capture.sources import FullSource, QKSource
from attnscope.capture.stash import Stash
from attnscope.capture.tokens import Encoding, Part, Token, check_text, encode, render_chat, spans, tokenize
from attnscope.capture.trace import Trace
from attnscope.errors import InputError, TooLongError, UnsupportedError
from attnscope.models.disk import human_bytes
from attnscope.models.loaded import LoadedModel
from attnscope.models.provenance import new_record, stash_fields, text_fields, utc_now
from attnscope.progress import Progress, adapt

Backend = Literal["auto", "full", "qk"]

# ``backend="auto"`` uses the exact eager ``full`` source up to this many tokens and ``qk`` above:
# full attention costs layers x heads x N^2 floats (24 x 14 x 512^2 x 4 B = 1.4 GB for Qwen at 512).
AUTO_QK_MIN_TOKENS = 512
# The eager maps of ``backend="full"`` are refused above this many bytes: layers x heads x N^2 float32
# over every stack (SmolLM2 at 8,192 tokens: 30 x 9 x 8192^2 x 4 B = 72 GB). ``auto`` then uses ``qk``.
FULL_MAX_BYTES = 2 * 1024**3


def capture(
    model: LoadedModel,
    text: str | bytes | None = None,
    *,
    messages: list[dict[str, str]] | None = None,
    target: str | None = None,
    backend: Backend = "auto",
    layers: Iterable[int] | None = None,
    top_k: int = 10,
    predict: Literal["all", "last", "none"] = "last",
    stash: str = "auto",
    stash_budget: int | None = None,
    progress: Callable[..., None] | None = None,
) -> Trace:
    """Run ``model`` once over ``text`` (or chat ``messages``) and record what it attends to.

    Args:
        model: from :func:`attnscope.load_model`.
        text: the input text (bytes must be UTF-8). Exactly one of ``text`` and ``messages``.
        messages: ``[{"role", "content"}, ...]`` rendered by the tokenizer's chat template; each
            message's character span becomes a :class:`Part` of the trace.
        target: encoder-decoders only: the decoder-side text (after the start token).
        backend: ``full`` (eager ``output_attentions``), ``qk`` (queries/keys, rows recomputed on
            demand) or ``auto`` (``full`` up to ``AUTO_QK_MIN_TOKENS`` tokens, ``qk`` above).
            ``full`` is refused (:class:`TooLongError`) when its maps would pass ``FULL_MAX_BYTES``
            (see :func:`full_attention_bytes`); ``auto`` then uses ``qk``, and when the architecture
            does not support ``qk`` it falls back to ``full`` only within that budget.
        layers: capture only these layers (negative allowed); default all.
        top_k: how many next-token candidates to keep per position.
        predict: ``last`` (default): the last position's top-k at once and any other position's
            when it is first asked for (the final hidden states are kept and the LM head runs then:
            no N x vocab logits for a whole long input); ``all``: every position at once; ``none``.
        stash: where ``qk`` keeps queries and keys (:mod:`.stash`): ``device`` (where the model
            made them, in its dtype), ``host`` (pinned host memory, copied on a side stream on a
            GPU) or ``auto`` (the device up to ``stash_budget`` bytes, by default half the free
            device memory, the host beyond).
        stash_budget: bytes the ``auto`` stash may keep on the device.
        progress: called as ``progress(done, total)`` (or ``progress(done, total, stage)``) after
            each transformer layer of the forward pass (all stacks together), for progress bars on
            long inputs; it may raise :class:`attnscope.errors.CancelledError` to stop the capture.
    """
    if backend not in ("auto", "full", "qk"):
        raise InputError(f"unknown backend {backend!r}; use auto, full or qk")
    if not 1 <= int(top_k) <= 1000:
        raise InputError("top_k must be between 1 and 1000")
    if predict not in ("all", "last", "none"):
        raise InputError(f"unknown predict {predict!r}; use all, last or none")
    keeper = Stash(stash, stash_budget, model.device)
    text, encoding, parts = prompt_encoding(model, text, messages)
    model.check_length(len(encoding.ids))
    target_tokens = _target_tokens(model, target)
    wanted = _wanted_layers(model, layers)
    return capture_tokens(
        model, text, encoding, parts, (target_tokens, target), backend, wanted, top_k, predict, keeper, progress
    )


def prompt_encoding(
    model: LoadedModel, text: str | bytes | None, messages: list[dict[str, str]] | None
) -> tuple[str, Encoding, list[Part]]:
    """(text, its encoding, its parts) for a plain ``text`` (special tokens added as the tokenizer
    does) or chat ``messages`` (rendered by the chat template, one part per message)."""
    if (text is None) == (messages is None):
        raise InputError("pass exactly one of text and messages")
    parts: list[Part] = []
    if messages is not None:
        text, parts = render_chat(model.tokenizer, messages)
        text = check_text(text)
        encoding = encode(model.tokenizer, text, add_special_tokens=False)
    else:
        text = check_text(text)
        encoding = encode(model.tokenizer, text)
    if not encoding.ids:
        raise InputError("the text gives no tokens")
    return text, encoding, parts


def prompt_tokens(
    model: LoadedModel, text: str | bytes | None, messages: list[dict[str, str]] | None
) -> tuple[str, list[Token], list[Part]]:
    """(text, its tokens, its parts): :func:`prompt_encoding` with the spans made at once."""
    text, encoding, parts = prompt_encoding(model, text, messages)
    return text, spans(encoding), parts


def capture_tokens(
    model: LoadedModel,
    text: str,
    tokens: list[Token] | Encoding,
    parts: list[Part],
    target: tuple[list[Token] | None, str | None],
    backend: Backend,
    wanted: set[int] | None,
    top_k: int,
    predict: str,
    keeper: Stash,
    progress: Callable[..., None] | None,
) -> Trace:
    """:func:`capture` of ``tokens`` (already checked), which cover ``text``; ``target``: the decoder
    tokens and text of an encoder-decoder, else (None, None). ``tokens`` may be the text's
    :class:`Encoding`: its spans are then made after the forward pass is queued, while a GPU computes
    it (the host work per token costs nothing there; on a CPU it is the same work as before)."""
    target_tokens, target_text = target
    ids = tokens.ids if isinstance(tokens, Encoding) else [t.id for t in tokens]
    started_at = utc_now()

    maps_bytes = full_attention_bytes(model, len(ids), None if target_tokens is None else len(target_tokens))
    chosen = backend
    if backend == "auto":
        chosen = "qk" if len(ids) > AUTO_QK_MIN_TOKENS or maps_bytes > FULL_MAX_BYTES else "full"
    elif backend == "full":
        _check_full_budget(maps_bytes, len(ids), "use backend qk (rows computed on demand)")
    with model.lock, torch.inference_mode(), layer_progress(model.model, adapt(progress)):
        try:
            source, logits_fn = _forward(model, ids, target_tokens, chosen, wanted, keeper)
        except UnsupportedError:
            if backend != "auto" or chosen == "full":
                raise
            _check_full_budget(
                maps_bytes, len(ids), f"backend qk does not support {model.arch.model_type}: shorten the text"
            )
            chosen = "full"
            source, logits_fn = _forward(model, ids, target_tokens, chosen, wanted, keeper)
        if isinstance(tokens, Encoding):  # the forward is queued on the device: the spans meanwhile
            tokens = spans(tokens)
        predictions = (
            None if predict == "none" else predictions_of(model, logits_fn, tokens, target_tokens, top_k, now=predict)
        )

    provenance = new_record(
        model.provenance,
        started_at=started_at,
        captured_at=utc_now(),
        **text_fields(text, len(tokens), chat=bool(parts)),
        backend=chosen,
        **stash_fields(keeper.describe() if chosen == "qk" else None),  # the full source keeps no stash
        top_k=int(top_k),
        predict=predict,
        layers_captured=sorted(wanted) if wanted is not None else "all",
    )
    return Trace(
        text=text,
        tokens=tokens,
        model=model.info(),
        source=source,
        backend=chosen,
        predictions=predictions,
        provenance=provenance,
        parts=parts,
        target_tokens=target_tokens,
        target_text=target_text,
    )


def full_attention_bytes(model: LoadedModel, n_tokens: int, n_target: int | None = None) -> int:
    """Bytes of the eager attention maps (float32) of every stack for ``n_tokens`` input tokens
    (and ``n_target`` decoder tokens of an encoder-decoder): what ``backend="full"`` holds at once."""
    arch = model.arch
    target = n_tokens if n_target is None else n_target
    shapes = {"encoder": (n_tokens, n_tokens), "decoder": (target, target), "cross": (target, n_tokens)}
    stacks = {name: (info.layers, info.heads) for name, info in arch.stacks.items()} or {
        "decoder": (arch.layers, arch.heads)
    }
    return sum(layers * heads * shapes[name][0] * shapes[name][1] * 4 for name, (layers, heads) in stacks.items())


def _check_full_budget(maps_bytes: int, n_tokens: int, advice: str) -> None:
    if maps_bytes > FULL_MAX_BYTES:
        raise TooLongError(
            f"backend full would hold {human_bytes(maps_bytes)} of attention maps for {n_tokens:,} tokens "
            f"(layers x heads x N^2 floats), over the {human_bytes(FULL_MAX_BYTES)} budget (FULL_MAX_BYTES); {advice}"
        )


@contextmanager
def layer_progress(hf: Any, progress: Progress | None) -> Iterator[None]:
    """Forward hooks on every transformer block (the top-level ``ModuleList``s: ``model.layers``,
    ``transformer.h``, ``encoder.block``, ...) calling ``progress(done, total)``."""
    if progress is None:
        yield
        return
    blocks = [
        module
        for name, modules in hf.named_modules()
        if isinstance(modules, torch.nn.ModuleList) and not any(part.isdigit() for part in name.split("."))
        for module in modules
    ]
    done = [0]

    def step(*_: Any) -> None:
        done[0] += 1
        progress(min(done[0], len(blocks)), len(blocks), "forward pass")

    handles = [block.register_forward_hook(step) for block in blocks]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def _wanted_layers(model: LoadedModel, layers: Iterable[int] | None) -> set[int] | None:
    if layers is None:
        return None
    return {resolve_index(layer, model.arch.layers, "layer", model.name, "layers") for layer in layers}


def target_start(model: LoadedModel, start_id: int | None = None) -> list[Token]:
    """The decoder's start token of an encoder-decoder (``start_id``, else the config's), as the
    first target token."""
    start_id = model.model.config.decoder_start_token_id if start_id is None else start_id
    if start_id is None:
        raise UnsupportedError("this encoder-decoder model declares no decoder_start_token_id")
    return [Token(0, int(start_id), model.tokenizer.convert_ids_to_tokens(int(start_id)), None, None, True)]


def _target_tokens(model: LoadedModel, target: str | None) -> list[Token] | None:
    if model.kind != "seq2seq":
        if target is not None:
            raise InputError("target is for encoder-decoder models only")
        return None
    [start] = target_start(model)
    if not target:
        return [start]
    body = tokenize(model.tokenizer, target, add_special_tokens=False)
    return [start, *(Token(t.index + 1, t.id, t.text, t.start, t.end, t.special) for t in body)]


def _forward(
    model: LoadedModel,
    ids: list[int],
    target_tokens: list[Token] | None,
    backend: str,
    wanted: set[int] | None,
    stash: Stash,
) -> tuple[AttentionSource, Any]:
    """Run the forward pass; returns the attention source and a function giving logits rows."""
    hf = model.model
    device = next(hf.parameters()).device
    input_ids = torch.tensor([ids], device=device)
    full = backend == "full"
    kwargs: dict[str, Any] = {"output_attentions": full, "use_cache": False}
    if model.kind == "seq2seq":
        assert target_tokens is not None
        kwargs["decoder_input_ids"] = torch.tensor([[t.id for t in target_tokens]], device=device)

    hidden: dict[str, torch.Tensor] = {}

    def run() -> Any:
        if model.kind != "causal":
            return hf(input_ids=input_ids, **kwargs)

        # The model's own forward (only the last position through its LM head); the final hidden
        # states of every position are picked up from the base model for chunked predictions.
        def keep(_module: Any, _args: Any, output: Any) -> None:
            hidden["last"] = output.last_hidden_state if hasattr(output, "last_hidden_state") else output[0]

        handle = hf.base_model.register_forward_hook(keep)
        try:
            return hf(input_ids=input_ids, logits_to_keep=1, **kwargs)
        finally:
            handle.remove()

    if full:
        with qk.attention_implementation(hf, "eager"):
            outputs = run()
        source: AttentionSource = FullSource(maps=_full_maps(model, outputs, wanted))
    else:
        qk.ensure_registered()
        recorder = qk.QKRecorder.for_model(hf, model.kind, wanted, stash)
        with qk.attention_implementation(hf, qk.QK_ATTENTION), recorder.active():
            outputs = run()
        stash.finish()
        check_complete(model, recorder, wanted)
        source = QKSource(records=recorder.records, masks=recorder.masks, biases=recorder.biases)

    if model.kind == "causal":
        states = hidden["last"][0]  # (tokens, hidden)
        return source, lambda begin, end: lm_logits(hf, states[begin:end])
    logits = getattr(outputs, "logits", None)
    if logits is None:
        return source, None
    return source, lambda begin, end: logits[0, begin:end]


def _full_maps(model: LoadedModel, outputs: Any, wanted: set[int] | None) -> dict[str, dict[int, np.ndarray]]:
    if model.kind == "seq2seq":
        by_stack = {
            "encoder": outputs.encoder_attentions,
            "decoder": outputs.decoder_attentions,
            "cross": outputs.cross_attentions,
        }
    else:
        by_stack = {"encoder" if model.kind == "masked" else "decoder": outputs.attentions}
    maps: dict[str, dict[int, np.ndarray]] = {}
    for stack, attentions in by_stack.items():
        if not attentions or any(a is None for a in attentions):
            raise UnsupportedError(f"the model returned no {stack} attention weights with output_attentions=True")
        maps[stack] = {
            layer: a[0].to(torch.float32).cpu().numpy()  # (heads, query, key)
            for layer, a in enumerate(attentions)
            if wanted is None or layer in wanted
        }
    return maps


def check_complete(model: LoadedModel, recorder: qk.QKRecorder, wanted: set[int] | None) -> None:
    for stack, info in model.arch.stacks.items():
        expected = {layer for layer in range(info.layers) if wanted is None or layer in wanted}
        seen = {layer for (s, layer) in recorder.records if s == stack}
        if seen != expected:
            raise UnsupportedError(
                f"qk capture saw {len(seen)} of {len(expected)} {stack} attention layers for this architecture "
                f"({model.arch.model_type}); use backend='full'"
            )


def predictions_of(
    model: LoadedModel,
    logits_fn: Any,
    tokens: list[Token],
    target_tokens: list[Token] | None,
    top_k: int,
    *,
    now: str = "all",
) -> Predictions | None:
    """Predictions that run the LM head when a position is asked for; ``now``: ``all`` positions
    computed at once, or only the ``last``."""
    if logits_fn is None or not model.has_lm_head:
        return None
    sequence = target_tokens if target_tokens is not None else tokens
    ids = torch.tensor([t.id for t in sequence])
    n = len(sequence)
    k = min(top_k, model.arch.vocab_size or 1)

    def rows(begin: int, end: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        with torch.inference_mode():
            logits = logits_fn(begin, end).to(torch.float32).cpu()  # (rows, vocab)
        chunk_ids, chunk_probs, log_norm = scoring.top_k(logits, k)
        following = np.full((end - begin,), np.nan, dtype=np.float32)
        # the token after each position, where there is one (a masked LM predicts the token at a
        # position, not the next one: no next_prob there)
        after = ids[begin + 1 : end + 1] if model.kind != "masked" else ids[:0]
        if len(after):
            picked = logits[torch.arange(len(after)), after] - log_norm[: len(after)]
            following[: len(after)] = torch.exp(picked).numpy()
        return chunk_ids.numpy(), chunk_probs.numpy(), following

    predictions = Predictions(
        top_ids=np.full((n, k), -1, dtype=np.int64),  # -1: not computed yet
        top_probs=np.full((n, k), np.nan, dtype=np.float32),
        next_prob=np.full((n,), np.nan, dtype=np.float32),
        compute_rows=rows,
        decode=lambda found: decode_ids(model.tokenizer, found),
        chunk=rows_per_chunk(model.arch.vocab_size or 1),
    )
    # encoders and encoder-decoders return every position's logits anyway: reduce them all now and
    # let the (N x vocab) tensor go, instead of keeping it alive for later positions
    everything = now == "all" or model.kind != "causal"
    predictions.ensure(0 if everything else n - 1, n)
    if model.kind != "causal":
        predictions.compute_rows = None
    return predictions
