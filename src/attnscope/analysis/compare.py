"""Comparisons: several prompts side by side, and the difference between two traces.

- :func:`prompt_summary` condenses one trace (prediction, head-metric means, most attended units)
  so that prompts — templates, languages, paraphrases — can be tabulated side by side.
- :func:`compare_prompts` does both for the CLI and the server, checking the layer and head asked for
  on every trace (also when no difference is drawn, so a bad selection is never silently ignored).
- :func:`trace_difference` subtracts two traces' attention maps (layer, heads combined) after
  aligning their tokens: tokens are matched by ``difflib.SequenceMatcher`` on their texts, so two
  prompts that share words (or two models' tokenizations of one text, when pieces agree) are compared
  on the tokens they have in common; unmatched tokens are listed, not guessed.
- :func:`unit_difference` compares the whole maps (every query row) on words (sentences,
  paragraphs): each text's units are matched by their texts (``difflib`` again), each trace's full
  map is aggregated onto its matched units (keys summed, queries averaged:
  :func:`attnscope.analysis.units.aggregate_map`) and b is subtracted from a. ``compare_prompts``
  attaches it to the difference of two prompts (``difference.units`` in the JSON).

Prompts are compared on a self-attention stack over their own tokens: the decoder of a causal LM,
the encoder of an encoder or of an encoder–decoder (:func:`prompt_stack`).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

import numpy as np

from attnscope.analysis.aggregate import aggregate_attention
from attnscope.analysis.heads import head_metrics
from attnscope.analysis.units import Granularity, Unit, aggregate_map, aggregate_scores, make_units
from attnscope.capture.selection import HeadSelector, LayerSelector, Selection
from attnscope.capture.trace import Trace
from attnscope.errors import InputError


def prompt_stack(trace: Trace) -> str:
    """The self-attention stack over the prompt's own tokens (the encoder of an encoder–decoder)."""
    return "encoder" if trace.kind == "seq2seq" else trace.default_stack


def prompt_summary(trace: Trace, *, granularity: Granularity = "word", top: int = 5) -> dict[str, Any]:
    """Prediction, mean head metrics and the ``top`` units the last prompt token attends to most."""
    summary: dict[str, Any] = {"text": trace.text, "n_tokens": len(trace.tokens), "prediction": None}
    if trace.predictions is not None and trace.predictions.available(-1):
        best = trace.top_predictions(-1, 1)[0]
        summary["prediction"] = {"token": best.token, "id": best.id, "prob": best.prob}
    stack = prompt_stack(trace)
    metrics = head_metrics(trace, stack=stack, rows=[-1])
    summary["head_means"] = {name: float(np.nanmean(values)) for name, values in metrics.items()}
    row = aggregate_attention(trace, layers="all", head="mean", rows=[-1], stack=stack)[0]
    units = make_units(trace.text, trace.key_tokens(stack), granularity)
    scores = aggregate_scores(row, units)
    order = np.argsort(-scores)[:top]
    summary["top_units"] = [
        {"text": units[i].text, "start": units[i].start, "end": units[i].end, "attention": float(scores[i])}
        for i in order
    ]
    return summary


@dataclass
class TraceDifference:
    pairs: list[tuple[int, int]]  # matched (token in a, token in b)
    tokens: list[str]  # text of the matched tokens
    difference: np.ndarray  # (matched, matched): a − b on matched query/key pairs
    only_a: list[int]  # tokens of a without a partner
    only_b: list[int]
    units: UnitDifference | None = None  # the whole maps on matched words (two prompts compared)

    def to_json(self) -> dict[str, Any]:
        body = {
            "pairs": [list(p) for p in self.pairs],
            "tokens": self.tokens,
            "difference": np.round(self.difference, 6).tolist(),
            "max_abs": float(np.abs(self.difference).max()) if self.difference.size else 0.0,
            "only_a": self.only_a,
            "only_b": self.only_b,
        }
        if self.units is not None:
            body["units"] = self.units.to_json()
        return body


@dataclass
class UnitDifference:
    """Two texts' whole attention maps on their matched units (see :func:`unit_difference`)."""

    granularity: str
    units_a: list[Unit]  # matched units of a, in order
    units_b: list[Unit]  # their partners in b
    map_a: np.ndarray  # (matched units, matched units): every query row of a, on its matched units
    map_b: np.ndarray
    only_a: list[str]  # texts of a's units without a partner
    only_b: list[str]

    @property
    def difference(self) -> np.ndarray:
        return self.map_a - self.map_b

    def to_json(self) -> dict[str, Any]:
        difference = self.difference
        return {
            "granularity": self.granularity,
            "units": [
                {"text": ua.text, "a": [ua.start, ua.end], "b": [ub.start, ub.end], "special": ua.special}
                for ua, ub in zip(self.units_a, self.units_b, strict=True)
            ],
            "map_a": np.round(self.map_a, 6).tolist(),
            "map_b": np.round(self.map_b, 6).tolist(),
            "difference": np.round(difference, 6).tolist(),
            "max_abs": float(np.abs(difference).max()) if difference.size else 0.0,
            "only_a": self.only_a,
            "only_b": self.only_b,
        }


def unit_difference(
    a: Trace, b: Trace, *, layer: LayerSelector = -1, head: HeadSelector = "mean", granularity: Granularity = "word"
) -> UnitDifference:
    """The whole maps of ``a`` and ``b`` (every query row, ``layer`` and ``head`` combined) on the
    units of ``granularity`` they share by text, a − b; unmatched units are listed by text."""
    stack_a, stack_b = prompt_stack(a), prompt_stack(b)
    units_a = make_units(a.text, a.key_tokens(stack_a), granularity)
    units_b = make_units(b.text, b.key_tokens(stack_b), granularity)
    matcher = difflib.SequenceMatcher(a=[u.text for u in units_a], b=[u.text for u in units_b], autojunk=False)
    pairs = [(m.a + k, m.b + k) for m in matcher.get_matching_blocks() for k in range(m.size)]
    chosen_a, chosen_b = [units_a[i] for i, _ in pairs], [units_b[j] for _, j in pairs]
    full_a = aggregate_attention(a, layers=layer, head=head, stack=stack_a)  # (query, key)
    full_b = aggregate_attention(b, layers=layer, head=head, stack=stack_b)
    matched_a, matched_b = {i for i, _ in pairs}, {j for _, j in pairs}
    return UnitDifference(
        granularity,
        chosen_a,
        chosen_b,
        aggregate_map(full_a, chosen_a, chosen_a),
        aggregate_map(full_b, chosen_b, chosen_b),
        [u.text for i, u in enumerate(units_a) if i not in matched_a],
        [u.text for j, u in enumerate(units_b) if j not in matched_b],
    )


def align_tokens(a: Trace, b: Trace) -> list[tuple[int, int]]:
    """Pairs of token indexes with equal text, in order (longest matching blocks first)."""
    texts_a, texts_b = [t.text for t in a.tokens], [t.text for t in b.tokens]
    matcher = difflib.SequenceMatcher(a=texts_a, b=texts_b, autojunk=False)
    pairs: list[tuple[int, int]] = []
    for block in matcher.get_matching_blocks():
        pairs += [(block.a + i, block.b + i) for i in range(block.size)]
    return pairs


def trace_difference(
    a: Trace,
    b: Trace,
    *,
    layer: LayerSelector = -1,
    head: HeadSelector = "mean",
    pairs: list[tuple[int, int]] | None = None,
) -> TraceDifference:
    """Attention of ``a`` minus attention of ``b`` on the tokens they share: ``pairs`` of token
    indexes (a, b) when given (a counterfactual's alignment by characters), else :func:`align_tokens`."""
    pairs = align_tokens(a, b) if pairs is None else [(int(i), int(j)) for i, j in pairs]
    rows_a = np.array([i for i, _ in pairs], dtype=np.int64)
    rows_b = np.array([j for _, j in pairs], dtype=np.int64)
    map_a = aggregate_attention(a, layers=layer, head=head, rows=rows_a, stack=prompt_stack(a))[:, rows_a]
    map_b = aggregate_attention(b, layers=layer, head=head, rows=rows_b, stack=prompt_stack(b))[:, rows_b]
    matched_a, matched_b = set(rows_a.tolist()), set(rows_b.tolist())
    return TraceDifference(
        pairs,
        [a.tokens[i].text for i in rows_a],
        map_a - map_b,
        [i for i in range(len(a.tokens)) if i not in matched_a],
        [j for j in range(len(b.tokens)) if j not in matched_b],
    )


def compare_prompts(
    traces: list[Trace], *, granularity: Granularity = "word", layer: LayerSelector = -1, head: HeadSelector = "mean"
) -> tuple[list[dict[str, Any]], TraceDifference | None, Selection]:
    """Every trace's :func:`prompt_summary`, for two traces their :func:`trace_difference`, and the
    resolved selection of the difference (with its label). ``layer`` and ``head`` must exist in every
    trace, and combine heads (a head, a list, mean or max)."""
    views = [trace.select(layer=layer, head=head, stack=prompt_stack(trace)) for trace in traces]
    if views[0].head is None:
        raise InputError("a difference map combines heads: choose a head, a list of heads, mean or max (not all)")
    summaries = [prompt_summary(trace, granularity=granularity) for trace in traces]
    difference = None
    if len(traces) == 2:
        difference = trace_difference(traces[0], traces[1], layer=layer, head=head)
        difference.units = unit_difference(traces[0], traces[1], layer=layer, head=head, granularity=granularity)
    return summaries, difference, views[0]
