"""attnscope attributions as inseq's ``FeatureAttributionOutput`` (layout: :mod:`.inseq_io`).

Needs inseq (``pip install 'attnscope[interop]'``). The result is an in-memory inseq object: its
``.show()``, ``.aggregate()`` and ``.save(path)`` are inseq's own. Files written from it leave the
process, so the CLI masks personal data in the answer first (:func:`masked_answer`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from attnscope.errors import InputError

if TYPE_CHECKING:
    from attnscope.capture.trace import Trace
    from attnscope.models.loaded import LoadedModel


def to_inseq(
    source: Any,
    method: str | None = None,
    *,
    text: str | None = None,
    model: LoadedModel | None = None,
    **options: Any,
) -> Any:
    """An ``inseq.FeatureAttributionOutput`` of ``source``:

    - an attribution answer (``attnscope attribute --json``, a stored run's result) or an
      :class:`~attnscope.methods.run.Attribution` (``text``: the text it explains, for inseq's
      ``input_texts``; token ids are unknown there and written -1);
    - a generation answer with per-step attribution (``attnscope generate --attribute M --json``);
    - a :class:`~attnscope.capture.trace.Trace` and a ``method`` (computed now; ``model`` for the
      methods that run it): a generation trace gives one step per generated token, a trace one step.
    """
    from attnscope.capture.trace import Trace

    if isinstance(source, Trace):
        if method is None:
            raise InputError("to_inseq(trace) needs the attribution method (e.g. method='attention')")
        answer = trace_answer(source, method, model, **options)
        return from_answer(answer, text=source.text, ids=[t.id for t in source.tokens])
    if method is not None or options:
        raise InputError("a method and its options go with a trace, not with a computed attribution")
    if hasattr(source, "scores_by_token") and hasattr(source, "units"):  # an Attribution
        from attnscope.render.json import attribution_json

        source = attribution_json(source)
    if not isinstance(source, dict):
        raise InputError(f"to_inseq takes an attribution, a generation answer or a trace, not {type(source).__name__}")
    if source.get("result") == "attribution":
        return from_attribution_answer(source, text=text)
    if source.get("result") == "generation":
        return from_generation_answer(source)
    raise InputError(f"an answer of kind {source.get('result')!r} has no inseq form (attribution or generation only)")


def masked_answer(kind: str, text: str, answer: dict[str, Any], policy: str) -> dict[str, Any]:
    """``answer`` with personal data masked by ``policy`` (``drop`` raises when there is any)."""
    from attnscope.governance.masking import mask_answer

    _, masked, _ = mask_answer(kind, text, answer, policy)
    return masked


def from_attribution_answer(answer: dict[str, Any], *, text: str | None = None, ids: list[int] | None = None) -> Any:
    """One step: the tokens up to ``query`` score the token predicted after it."""
    if answer.get("granularity") != "token":
        raise InputError(
            f"inseq's scores are per token; this attribution is per {answer.get('granularity')}: "
            "export a token-granularity attribution"
        )
    if (answer.get("model") or {}).get("kind", "causal") != "causal":
        raise InputError("inseq's decoder-only layout needs a causal LM's attribution (this model is not causal)")
    if answer.get("objective") not in (None, "next-token", "attention"):
        raise InputError(
            f"inseq attributes one generated token per step; an attribution of objective {answer.get('objective')!r} "
            "(a whole continuation or a loss) has no inseq form"
        )
    units, scores = answer["units"], answer["scores"]
    if len(units) != len(scores):
        raise InputError(f"the answer has {len(units)} units and {len(scores)} scores")
    query = answer.get("query")
    query = len(units) - 1 if query is None else int(query)
    if not 0 <= query < len(units):
        raise InputError(f"query {query} is outside the answer's {len(units)} tokens")
    target = answer.get("target") or {}
    if not isinstance(target.get("text"), str):
        raise InputError("this attribution names no explained token (its target has no text)")
    ids = ids or [-1] * len(units)
    tokens = [(unit["text"], int(i)) for unit, i in zip(units, ids, strict=True)][: query + 1]
    explained = (target["text"], int(target["ids"][0]) if target.get("ids") else -1)
    column = np.array([np.nan if s is None else s for s in scores[: query + 1]], dtype=np.float64)
    provenance = answer.get("provenance") or {}
    ends = [unit["end"] for unit in units[: query + 1] if unit.get("end") is not None]
    prompt = _joined(units[: query + 1]) if text is None else text[: max(ends, default=0)]
    info = _info(answer, provenance, prompt, generated=prompt + explained[0])
    return build([*tokens, explained], [column], [query + 1], None, info)


def from_generation_answer(answer: dict[str, Any]) -> Any:
    """One step per generated token, from the answer's ``attribution`` block."""
    block = answer.get("attribution")
    if not isinstance(block, dict):
        raise InputError("this generation has no per-step attribution (attnscope generate --attribute METHOD)")
    if answer.get("target_tokens"):
        raise InputError("per-step attribution of an encoder-decoder has no inseq export here")
    tokens = [(t["text"], int(t["id"])) for t in answer["prompt"]["tokens"] + answer["generated"]["tokens"]]
    positions = [int(p) for p in block["positions"]]
    columns = [np.array([np.nan if s is None else s for s in row], dtype=np.float64) for row in block["scores"]]
    probs = [float(step["prob"]) for step in answer.get("steps", [])]
    text = answer["prompt"]["text"] + answer["generated"]["text"]
    info = _info({**answer, "method": block["method"], "options": block.get("options")}, answer.get("provenance") or {},
                 answer["prompt"]["text"], generated=text)  # fmt: skip
    return build(tokens, columns, positions, probs if len(probs) == len(positions) else None, info)


def build(
    tokens: list[tuple[str, int]],
    columns: list[np.ndarray],
    positions: list[int],
    probs: list[float] | None,
    info: dict[str, Any],
) -> Any:
    """inseq's decoder-only ``FeatureAttributionOutput``: step ``s`` explains ``tokens[positions[s]]``
    with ``columns[s]`` (scores of tokens ``0 … positions[s] - 1``)."""
    try:
        import torch
        from inseq.data.attribution import CoarseFeatureAttributionSequenceOutput, FeatureAttributionOutput
        from inseq.utils.typing import TokenWithId
    except ImportError:
        raise InputError("inseq is not installed: pip install 'attnscope[interop]'") from None
    if not positions or positions != list(range(positions[0], positions[0] + len(positions))):
        raise InputError(f"the steps' positions must follow each other; got {positions[:8]}")
    end = positions[-1] + 1
    if end > len(tokens) or positions[0] < 1:
        raise InputError(f"steps at positions {positions[0]}…{positions[-1]} do not fit {len(tokens)} tokens")
    matrix = np.full((end, len(positions)), np.nan, dtype=np.float32)  # (target tokens, steps)
    for step, (position, column) in enumerate(zip(positions, columns, strict=True)):
        if len(column) < position:
            raise InputError(f"step {step} has {len(column)} scores for the {position} tokens before it")
        matrix[:position, step] = column[:position]
    sequence = CoarseFeatureAttributionSequenceOutput(  # per-token scores: inseq aggregates nothing more
        source=[TokenWithId(text, token_id) for text, token_id in tokens[: positions[0]]],
        target=[TokenWithId(text, token_id) for text, token_id in tokens[:end]],
        source_attributions=None,
        target_attributions=torch.from_numpy(matrix),
        step_scores={} if probs is None else {"probability": torch.tensor(probs, dtype=torch.float32)},
        sequence_scores={},
        attr_pos_start=positions[0],
        attr_pos_end=end,
    )
    info = {**info, "attr_pos_start": positions[0], "attr_pos_end": end,
            "step_scores": [] if probs is None else ["probability"]}  # fmt: skip
    return FeatureAttributionOutput(sequence_attributions=[sequence], step_attributions=None, info=info)


def _info(answer: dict[str, Any], provenance: Any, prompt: str, *, generated: str | None = None) -> dict[str, Any]:
    model = answer.get("model") or {}
    record = provenance if isinstance(provenance, dict) else (provenance[0] if provenance else {})
    return {
        "attribution_method": f"attnscope:{answer.get('method')}",
        "attributed_fn": answer.get("objective") or "next-token",
        "attribution_args": answer.get("options") or {},
        "model_name": model.get("spec"),
        "model_class": model.get("model_type"),
        "tokenizer_name": model.get("spec"),
        "tokenizer_class": model.get("tokenizer"),
        "input_texts": [prompt],
        "generated_texts": [generated if generated is not None else prompt],
        "attnscope": {"model_fingerprint": model.get("fingerprint"), "provenance": record},
    }


def _joined(units: list[dict[str, Any]]) -> str:
    return "".join(unit["text"] for unit in units if unit.get("start") is not None)


def trace_answer(trace: Trace, method: str, model: LoadedModel | None = None, **options: Any) -> dict[str, Any]:
    """The answer ``method`` gives for ``trace``: a generation answer with its per-step ``attribution``
    for a generation, else an attribution answer (token granularity) for the trace's last token."""
    from attnscope.capture.trace import GenerationTrace

    if isinstance(trace, GenerationTrace) and trace.steps:
        from attnscope.methods.steps import step_attribution
        from attnscope.render.json import generation_json, step_attribution_json

        answer = generation_json(trace)
        answer["attribution"] = step_attribution_json(step_attribution(model, trace, method, **options))
        return answer
    from attnscope.methods.run import attribute
    from attnscope.render.json import attribution_json

    return attribution_json(attribute(model, trace.text, method, trace=trace, **{"granularity": "token", **options}))


def from_answer(answer: dict[str, Any], *, text: str | None = None, ids: list[int] | None = None) -> Any:
    """:func:`from_attribution_answer` or :func:`from_generation_answer`, by the answer's kind."""
    if answer.get("result") == "generation":
        return from_generation_answer(answer)
    return from_attribution_answer(answer, text=text, ids=ids)
