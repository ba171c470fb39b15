"""Two models on one text: attention, head metrics and attribution aligned on the text's characters.

Two models (base and fine-tuned, a model and its LoRA adapter, two families with different
tokenizers) see the same text but cut it into different tokens, and may have different numbers of
layers. Everything here is compared on what both share — the characters of the text:

- **Common units** (:func:`common_units`): the word (sentence, paragraph) units of
  :func:`attnscope.analysis.units.make_units` for each model's tokens, merged wherever a unit of
  one model overlaps a unit of the other, so every unit holds whole tokens of both models (the
  finest partition of the text both tokenizations respect). Special tokens inserted by a tokenizer
  (``start is None``: BOS, ``[CLS]``) belong to no common unit: they are listed per model, and the
  attention each query unit pays them is reported as ``to_special`` (a map's rows over the common
  units therefore sum to 1 − ``to_special``).
- **Layers matched by depth fraction** (:func:`match_layers`): layer ``i`` of model A (``L_A``
  layers) is compared with layer ``j = floor(i·(L_B − 1)/(L_A − 1) + 1/2)`` of model B (``L_B``
  layers); with one layer in A, ``j = L_B − 1``. Equal layer counts match layer for layer.
- **Difference maps**: per matched layer, heads combined as their mean, each model's
  (query, key) map is aggregated onto the common units (summed over a unit's key tokens, averaged
  over its query tokens: :func:`attnscope.analysis.units.aggregate_map`) and B is subtracted from A.
- **Head metrics** (:func:`attnscope.analysis.heads.head_metrics`, every query row): per layer the
  mean over heads, A's layer beside its matched layer of B.
- **Attribution**: each model's token scores summed onto the common units, with Spearman's ρ and
  Kendall's τ-b between them (:func:`attnscope.analysis.faithfulness.rank_agreement`).

Pure numpy over two traces (and token-score vectors); the methods layer runs the models.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from attnscope.analysis.aggregate import aggregate_attention
from attnscope.analysis.faithfulness import rank_agreement
from attnscope.analysis.heads import METRICS, head_metrics
from attnscope.analysis.units import Granularity, Unit, aggregate_map, aggregate_scores, make_units
from attnscope.capture.tokens import Token
from attnscope.capture.trace import Trace
from attnscope.contracts import plain
from attnscope.errors import InputError

LAYER_MATCH_FORMULA = "j = floor(i*(L_B-1)/(L_A-1) + 1/2); j = L_B-1 when L_A = 1"
MAX_MAP_CELLS = 4_000_000  # layers × units² of one model's maps: ~32 MB of float64 each, ~3 such arrays


def check_map_size(n_layers: int, n_units: int, layer_option: str = "layers") -> None:
    """Refuse maps of more than :data:`MAX_MAP_CELLS` cells (``n_layers`` × ``n_units``²), naming how
    many layers fit (``layer_option``: how the caller chooses layers, e.g. ``--layer``)."""
    cells = n_layers * n_units * n_units
    if cells <= MAX_MAP_CELLS:
        return
    fit = MAX_MAP_CELLS // max(n_units * n_units, 1)
    advice = (
        f"choose at most {fit} layer{'s' if fit != 1 else ''} with {layer_option}"
        if fit
        else "even one layer is too many: use a coarser granularity or a shorter text"
    )
    raise InputError(
        f"{n_layers} layers of {n_units:,} × {n_units:,} units are {cells:,} map cells (at most "
        f"{MAX_MAP_CELLS:,}); {advice}"
    )


@dataclass(frozen=True)
class CommonUnit:
    """A span of the text that whole tokens of both models cover."""

    text: str
    start: int
    end: int
    tokens_a: tuple[int, ...]  # token indexes of model A in this unit
    tokens_b: tuple[int, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "start": self.start,
            "end": self.end,
            "tokens_a": list(self.tokens_a),
            "tokens_b": list(self.tokens_b),
        }


def common_units(
    text: str, tokens_a: list[Token], tokens_b: list[Token], granularity: Granularity = "word"
) -> list[CommonUnit]:
    """The units of ``text`` that whole tokens of both tokenizations cover, in text order (see the
    module docstring); special tokens belong to none."""
    if granularity == "token":
        raise InputError("two tokenizations share no token units; compare on word, sentence or paragraph units")
    sides = [
        [u for u in make_units(text, tokens, granularity) if u.start is not None] for tokens in (tokens_a, tokens_b)
    ]
    for units in sides:
        units.sort(key=lambda unit: int(unit.start or 0))
    nodes = [(side, unit) for side, units in enumerate(sides) for unit in units]
    group = list(range(len(nodes)))

    def root(index: int) -> int:
        while group[index] != index:
            group[index] = group[group[index]]
            index = group[index]
        return index

    # a two-pointer sweep over both lists sorted by start: linear in the units (plus their overlaps)
    offset, low = len(sides[0]), 0
    spans_b = [(int(u.start or 0), int(u.end or 0)) for u in sides[1]]
    for first, unit_a in enumerate(sides[0]):
        start_a, end_a = int(unit_a.start or 0), int(unit_a.end or 0)
        while low < len(spans_b) and spans_b[low][1] <= start_a:
            low += 1  # ends before this A unit, so before every later one: never overlaps again
        second = low
        while second < len(spans_b) and spans_b[second][0] < end_a:
            if min(end_a, spans_b[second][1]) > max(start_a, spans_b[second][0]):
                group[root(offset + second)] = root(first)
            second += 1
    merged: dict[int, list[tuple[int, Unit]]] = {}
    for index, node in enumerate(nodes):
        merged.setdefault(root(index), []).append(node)
    result = []
    for members in merged.values():
        start = min(int(u.start) for _, u in members if u.start is not None)
        end = max(int(u.end) for _, u in members if u.end is not None)
        own = [tuple(sorted(i for side, u in members if side == which for i in u.tokens)) for which in (0, 1)]
        result.append(CommonUnit(text[start:end], start, end, own[0], own[1]))
    return sorted(result, key=lambda unit: unit.start)


def match_layers(layers_a: int, layers_b: int) -> list[int]:
    """For each layer ``i`` of A, the layer of B at the same depth fraction (module docstring)."""
    if layers_a < 1 or layers_b < 1:
        raise InputError("both models need at least one attention layer to compare")
    if layers_a == 1:
        return [layers_b - 1]
    return [int(np.floor(i * (layers_b - 1) / (layers_a - 1) + 0.5)) for i in range(layers_a)]


def _units(units: list[CommonUnit], side: int) -> list[Unit]:
    return [Unit(u.text, u.start, u.end, u.tokens_a if side == 0 else u.tokens_b) for u in units]


def unit_map(trace: Trace, layer: int, units: list[Unit]) -> tuple[np.ndarray, np.ndarray]:
    """(units, units) attention of ``layer`` (heads' mean) on ``units``, and (units,) mass to specials."""
    full = aggregate_attention(trace, layers=layer, head="mean")  # (query, key)
    specials = [t.index for t in trace.tokens if t.start is None]
    to_special = aggregate_map(full, units, [Unit("", None, None, tuple(specials))])  # (units, 1)
    return aggregate_map(full, units, units), to_special[:, 0]


def layer_head_means(trace: Trace) -> dict[str, np.ndarray]:
    """``{metric: (layers,)}`` the mean over heads of every head metric, all query rows."""
    metrics = head_metrics(trace, stack=trace.default_stack, rows=None)  # every query row
    return {name: np.nanmean(values, axis=1) for name, values in metrics.items()}


def _tokens_json(tokens: list[Token], units: list[CommonUnit], side: int) -> list[dict[str, Any]]:
    owner = {i: index for index, u in enumerate(units) for i in (u.tokens_a if side == 0 else u.tokens_b)}
    return [{**t.to_dict(), "unit": owner.get(t.index)} for t in tokens]


def _predictions(trace: Trace, top_k: int) -> list[dict[str, Any]] | None:
    if trace.predictions is None or not trace.predictions.available(-1):
        return None
    return [c.to_dict() for c in trace.top_predictions(-1, top_k)]


@dataclass
class ModelComparison:
    """Two traces of one text compared on common units; ``to_json()`` is the answer's body."""

    text: str
    granularity: str
    units: list[CommonUnit]
    traces: tuple[Trace, Trace]
    layer_pairs: list[tuple[int, int]]  # (layer of A, matched layer of B)
    maps: tuple[np.ndarray, np.ndarray]  # each (pairs, units, units)
    to_special: tuple[np.ndarray, np.ndarray]  # each (pairs, units)
    head_means: tuple[dict[str, np.ndarray], dict[str, np.ndarray]]  # metric -> (layers,) per model
    top_k: int = 5
    attribution: dict[str, Any] | None = None

    @property
    def difference(self) -> np.ndarray:
        """(pairs, units, units) A − B per matched layer."""
        return self.maps[0] - self.maps[1]

    def to_json(self) -> dict[str, Any]:
        difference = self.difference
        a, b = self.traces
        per_layer = [
            {
                "layer_a": la,
                "layer_b": lb,
                "max_abs": float(np.abs(d).max()) if d.size else 0.0,
                "mean_abs": float(np.abs(d).mean()) if d.size else 0.0,
            }
            for (la, lb), d in zip(self.layer_pairs, difference, strict=True)
        ]
        every = match_layers(a.num_layers(), b.num_layers())  # all of A's layers, for the head metrics
        heads = {
            name: {"a": plain(self.head_means[0][name]), "b": plain(self.head_means[1][name][every])}
            for name in METRICS
        }
        return {
            "text": self.text,
            "granularity": self.granularity,
            "units": [u.to_dict() for u in self.units],
            "models": [
                {
                    "tokens": _tokens_json(trace.tokens, self.units, side),
                    "special_tokens": [t.index for t in trace.tokens if t.start is None],
                    "layers": trace.num_layers(),
                    "heads": trace.num_heads(),
                    "predictions": _predictions(trace, self.top_k),
                    "maps": np.round(self.maps[side], 6).tolist(),
                    "to_special": np.round(self.to_special[side], 6).tolist(),
                }
                for side, trace in enumerate((a, b))
            ],
            "layer_match": {
                "formula": LAYER_MATCH_FORMULA,
                "pairs": [list(p) for p in self.layer_pairs],  # the layers of the maps below
                "all": [[i, j] for i, j in enumerate(every)],  # every layer of A and its layer of B
            },
            "head": "mean",
            "difference": {
                "maps": np.round(difference, 6).tolist(),
                "max_abs": float(np.abs(difference).max()) if difference.size else 0.0,
                "layers": per_layer,
            },
            "head_metrics": {
                "combine": "mean over heads, every query row; every layer of A (layer_match.all)",
                "metrics": heads,
            },
            "attribution": self.attribution,
        }


def compare_models(
    a: Trace,
    b: Trace,
    *,
    granularity: Granularity = "word",
    layers: list[int] | None = None,
    top_k: int = 5,
    layer_option: str = "layers",
) -> ModelComparison:
    """A and B (traces of the same text by two models) on common units, for every layer of A (or
    the ``layers`` of A given, each once) and its matched layer of B; at most :data:`MAX_MAP_CELLS`
    map cells (``layer_option`` names how the caller chooses layers in the refusal)."""
    if a.text != b.text:
        raise InputError("a model comparison needs both traces of the same text")
    for trace in (a, b):
        if trace.kind not in ("causal", "masked"):
            raise InputError(f"{trace.model.spec}: only self-attention models (causal, masked) are compared")
    units = common_units(a.text, a.tokens, b.tokens, granularity)
    matched = match_layers(a.num_layers(), b.num_layers())
    chosen = list(range(a.num_layers())) if layers is None else layers
    for layer in chosen:
        if not -a.num_layers() <= layer < a.num_layers():
            raise InputError(f"layer {layer} is out of range: {a.model.spec} has {a.num_layers()} layers")
    pairs = [(layer % a.num_layers(), matched[layer % a.num_layers()]) for layer in chosen]
    if len({pair[0] for pair in pairs}) != len(pairs):
        raise InputError(f"{layer_option} names a layer of A twice; name each layer once")
    check_map_size(len(pairs), len(units), layer_option)
    size = len(units)
    stacked = (np.empty((len(pairs), size, size)), np.empty((len(pairs), size, size)))  # (pairs, units, units)
    specials = (np.empty((len(pairs), size)), np.empty((len(pairs), size)))  # (pairs, units)
    for side, trace in enumerate((a, b)):
        for index, pair in enumerate(pairs):
            stacked[side][index], specials[side][index] = unit_map(trace, pair[side], _units(units, side))
    return ModelComparison(
        a.text,
        granularity,
        units,
        (a, b),
        pairs,
        (stacked[0], stacked[1]),
        (specials[0], specials[1]),
        (layer_head_means(a), layer_head_means(b)),
        top_k,
    )


def attribution_side_by_side(
    units: list[CommonUnit], scores_a: np.ndarray, scores_b: np.ndarray, method: str
) -> dict[str, Any]:
    """Two (tokens,) score vectors (one per model) summed onto ``units``, and their rank agreement."""
    summed = [aggregate_scores(scores, _units(units, side)) for side, scores in enumerate((scores_a, scores_b))]
    agreement = rank_agreement({"a": summed[0], "b": summed[1]})
    return {
        "method": method,
        "a": plain(summed[0]),
        "b": plain(summed[1]),
        "spearman": plain(agreement.spearman[0, 1]),
        "kendall": plain(agreement.kendall[0, 1]),
        "n_units": int(agreement.n_units[0, 1]),
    }
