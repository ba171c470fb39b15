"""attnscope attributions as inseq's ``FeatureAttributionOutput``, and inseq's saved attributions as
attnscope attribution answers (and stored runs, origin ``import``).

Layout (inseq's decoder-only convention, which attnscope's causal LMs follow): a sequence's
``target`` is the whole token sequence (prompt + explained tokens), ``source`` the prompt;
``target_attributions`` is ``(len(target), steps)`` and column ``s`` scores the tokens before the
token at ``attr_pos_start + s`` (NaN from that row on). ``step_scores["probability"]`` holds each
step's probability where attnscope has it (generations).

- :func:`to_inseq`: an attribution answer (or :class:`~attnscope.methods.run.Attribution`) is one
  step — the token predicted after ``query`` (objective ``next-token``, token granularity); a
  generation answer with per-step attribution (``attnscope generate --attribute``) is one step per
  generated token; a trace and a method are computed first. Token strings are attnscope's display
  text (what inseq's ``decode_tokens`` shows), ids the tokenizer's.
- :func:`from_inseq`: each attributed step of a sequence becomes one attribution answer over the
  text before its token (encoder-decoders: over the source text). Scores are as inseq saved them;
  granular scores (one per embedding dimension) are reduced as inseq's default ``aggregate()``
  does — L2 norm over the embedding dimension, then each step divided by the sum of its |scores|
  — and multi-dimensional ones (attention: layer, head) by their mean, then the same division;
  ``details.inseq.aggregation`` says which.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from attnscope.errors import InputError
from attnscope.render.inseq_file import InseqFile, InseqSequence, from_object, piece_text, place_tokens, read_inseq

if TYPE_CHECKING:
    from attnscope.store.runs import Run, RunsStore

MAX_IMPORTED_STEPS = 2_000  # runs one import stores (each holds its step's scores over the text)
_INFO_KEPT = ("attribution_method", "attributed_fn", "model_name", "model_class", "tokenizer_name",
              "tokenizer_class", "attribute_target", "step_scores")  # fmt: skip


# ---- inseq -> attnscope ------------------------------------------------------------------------------------
def load_inseq(source: Any) -> InseqFile:
    """A path to a saved file, or an in-memory ``FeatureAttributionOutput``, checked."""
    if isinstance(source, InseqFile):
        return source
    if isinstance(source, str | Path):
        return read_inseq(source)
    if hasattr(source, "sequence_attributions"):
        return from_object(source)
    raise InputError(f"not an inseq attribution: {type(source).__name__}")


def from_inseq(source: Any, *, sequence: int | None = None, step: int | None = None) -> list[dict[str, Any]]:
    """Attribution answers (``attnscope attribute --json``'s shape) of an inseq attribution: one per
    attributed step of each sequence (or of ``sequence`` / ``step`` only; negative counts from the end)."""
    from attnscope.governance.provenance import seal

    data = load_inseq(source)
    chosen = range(len(data.sequences)) if sequence is None else [_index(sequence, len(data.sequences), "sequence")]
    wanted = sum(data.sequences[index].steps if step is None else 1 for index in chosen)
    if wanted > MAX_IMPORTED_STEPS:
        raise InputError(
            f"the file holds {wanted:,} attributed steps; one import takes at most {MAX_IMPORTED_STEPS:,} "
            "(choose with --sequence and --step)"
        )
    answers = []
    for index in chosen:
        one = data.sequences[index]
        scores, aggregation = _scores(one)
        text, spans = _text_and_spans(one, data.info, index)
        steps = range(one.steps) if step is None else [_index(step, one.steps, "step")]
        for at in steps:
            answer = _answer(data, one, index, at, scores, aggregation, text, spans)
            if not any(isinstance(v, int | float) and math.isfinite(v) for v in answer["scores"]):
                raise InputError(f"sequence {index}, step {at}: no finite score (all NaN): nothing to import")
            answers.append(seal(answer))
    return answers


def import_inseq(
    store: RunsStore,
    source: Any,
    *,
    sequence: int | None = None,
    step: int | None = None,
    pii_policy: str = "mask",
) -> list[Run]:
    """Store each answer of :func:`from_inseq` as a run (origin ``import``, kind ``attribution``).
    Everything is read and checked before the first run is stored; personal data is masked by
    ``pii_policy`` as for every stored run (``drop``: nothing is stored when there is any)."""
    from attnscope.governance.masking import check_policy, mask_answer

    check_policy(pii_policy)
    answers = from_inseq(source, sequence=sequence, step=step)
    for answer in answers:  # drop refuses before anything is stored
        mask_answer("attribution", answer["text"], answer, pii_policy)
    runs = []
    for answer in answers:
        text = answer.pop("text")
        runs.append(store.put(kind="attribution", text=text, model=answer["model"], result=answer, origin="import",
                              method=answer["method"], pii_policy=pii_policy))  # fmt: skip
    return runs


def _index(value: int, count: int, what: str) -> int:
    if not isinstance(value, int) or not -count <= value < count:
        raise InputError(f"{what} {value} out of range: the file has {count} {what}s")
    return value % count


def _scores(one: InseqSequence) -> tuple[dict[str, np.ndarray | None], str]:
    """Source and target scores as 2-D ``(tokens, steps)`` arrays, reduced as inseq's default."""
    arrays = {"source": one.source_attributions, "target": one.target_attributions}
    dims = max(a.ndim for a in arrays.values() if a is not None)
    if dims == 2:
        return arrays, "none: two-dimensional scores, as saved"
    if dims == 3 and one.cls != "MultiDimensionalFeatureAttributionSequenceOutput":  # granular (or primitives)
        reduced = {k: None if a is None else np.sqrt(np.sum(a * a, axis=-1)) for k, a in arrays.items()}
        words = "inseq's default: L2 norm over the embedding dimension, each step divided by the sum of its |scores|"
    else:
        reduced = {k: None if a is None else a.reshape(*a.shape[:2], -1).mean(axis=-1) for k, a in arrays.items()}
        words = f"mean over the {dims - 2} extra dimension(s), each step divided by the sum of its |scores|"
    present = [a for a in reduced.values() if a is not None]
    total = np.nansum(np.concatenate([np.abs(a) for a in present], axis=0), axis=0)  # (steps,)
    total = np.where(total > 1e-12, total, 1e-12)  # torch.nn.functional.normalize's eps
    return {k: None if a is None else a / total for k, a in reduced.items()}, words


def _text_and_spans(one: InseqSequence, info: dict[str, Any], index: int) -> tuple[str, list[Any]]:
    """The text the scored tokens are placed in, and their spans (source tokens for encoder-decoders,
    target tokens for decoder-only attributions)."""
    seq2seq = one.source_attributions is not None
    tokens = one.source if seq2seq else one.target
    pieces = [piece for piece, _ in tokens]
    keys = ("input_texts",) if seq2seq else ("generated_texts", "input_texts")
    candidates = [info[k][index] for k in keys if isinstance(info.get(k), list) and len(info[k]) > index]
    needed = pieces if seq2seq else pieces[: one.attr_pos_end - 1]  # the last token is only explained
    for text in [c for c in candidates if isinstance(c, str)] + [_spelled(needed)]:
        for count in (len(pieces), len(needed)):
            spans = place_tokens(pieces[:count], text) if text else None
            if spans is not None:
                return text, spans + [None] * (len(pieces) - count)
    raise InputError(
        f"sequence {index}: its token pieces do not spell its text, so they cannot be placed in it "
        f"(first pieces: {pieces[:5]!r})"
    )


def _spelled(pieces: list[str]) -> str:
    """The text the pieces spell, when the file does not say (specials left out)."""
    from attnscope.render.inseq_file import looks_special

    return "".join(piece_text(p) for p in pieces if not looks_special(p))


def _answer(
    data: InseqFile,
    one: InseqSequence,
    index: int,
    step: int,
    scores: dict[str, np.ndarray | None],
    aggregation: str,
    full_text: str,
    spans: list[Any],
) -> dict[str, Any]:
    from attnscope.contracts import SCHEMA_VERSION
    from attnscope.models.info import ModelInfo
    from attnscope.models.provenance import new_record, text_sha256, utc_now

    seq2seq = one.source_attributions is not None
    position = one.attr_pos_start + step  # the explained token's index in target
    tokens = one.source if seq2seq else one.target[:position]
    token_spans = spans[: len(tokens)]
    column = (scores["source"] if seq2seq else scores["target"])[: len(tokens), step]  # type: ignore[index]
    ends = [span[1] for span in token_spans if span is not None]
    text = full_text if seq2seq else full_text[: max(ends, default=0)]
    if not text:
        raise InputError(f"sequence {index}, step {step}: no text before the explained token")
    units = []
    for i, ((piece, _), span) in enumerate(zip(tokens, token_spans, strict=True)):
        start, end = span if span is not None else (None, None)
        units.append(
            {"text": text[start:end] if span is not None else piece, "start": start, "end": end, "tokens": [i]}
        )
    values = [None if not math.isfinite(v) else float(v) for v in column]
    explained_piece, explained_id = one.target[position]
    span = spans[position] if not seq2seq and position < len(spans) else None
    explained = full_text[span[0] : span[1]] if span is not None and span[1] > span[0] else piece_text(explained_piece)
    info = data.info
    model_name = str(info.get("model_name") or "unknown (inseq file)")
    method = f"inseq:{info.get('attribution_method') or 'unknown'}"
    kept = {key: info[key] for key in _INFO_KEPT if key in info}
    details: dict[str, Any] = {
        "imported_from": "inseq",
        "inseq": {**kept, "sequence": index, "step": step, "steps": one.steps, "class": one.cls,
                  "aggregation": aggregation, "file_sha256": data.sha256,
                  "step_scores": {k: _finite(v[step]) for k, v in one.step_scores.items()}},
    }  # fmt: skip
    if seq2seq and scores["target"] is not None:  # the decoder prefix's scores for this step
        details["inseq"]["target_scores"] = [_finite(v) for v in scores["target"][:position, step]]
        details["inseq"]["target_tokens"] = [piece_text(p) for p, _ in one.target[:position]]
    target = {"text": explained, "ids": [explained_id] if explained_id >= 0 else []}
    started = utc_now()
    record = new_record(
        None, started_at=started, model_spec=model_name, model_name=model_name, method=method,
        method_options={"imported_from": "inseq", "file_sha256": data.sha256, "sequence": index, "step": step,
                        "aggregation": aggregation, "inseq_info": kept},
        target={"objective": "next-token", **target, "query": None if seq2seq else position - 1},
        text_sha256=text_sha256(text), text_chars=len(text), text_tokens=len(tokens),
    )  # fmt: skip
    model = ModelInfo.from_dict({"spec": model_name, "name": model_name, "kind": "seq2seq" if seq2seq else "causal",
                                 "tokenizer": str(info.get("tokenizer_class") or "unknown")}).to_dict()  # fmt: skip
    return {
        "schema_version": SCHEMA_VERSION,
        "result": "attribution",
        "model": model,
        "method": method,
        "target": target,
        "objective": "next-token",
        "query": None if seq2seq else position - 1,
        "granularity": "token",
        "options": {},
        "units": units,
        "scores": values,
        "token_scores": values,
        "details": details,
        "provenance": record,
        "text": text,  # the text the units are placed in (taken out when stored: it is the run's text)
    }


def _finite(value: Any) -> float | None:
    number = float(value)
    return number if math.isfinite(number) else None
