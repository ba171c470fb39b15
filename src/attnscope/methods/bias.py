"""Bias probes: a suite's pairs through a causal LM — continuation probabilities, attention mass to
the marked terms per layer and head, and their differences — with bootstrap intervals over pairs.

For each variant of a pair, the prompt and its continuation become one token sequence: the prompt
tokenized as a capture tokenizes it (special tokens added), the continuation after it as the
tokenizer splits the joined text when the prompt's tokens stay the same, else tokenized on its own
and appended (a Chinese character merging with the prompt's last one). Then:

- the in-process scorer (:class:`attnscope.attribution.scorers.model.ModelScorer`) gives the sum
  of the continuation tokens' log-probabilities (``logprob``; ``prob`` is its exponential) and the
  next-token distribution at the prediction position (its top candidates are shown);
- one capture of the sequence (:func:`attnscope.capture.engine.capture_tokens`) gives the attention
  row of the query — the last prompt token in a text pair (the prediction position), the last
  continuation token in a continuation pair (the two prompts are the same there) — and its mass
  on each term's tokens, per layer and head.

The measures are :mod:`attnscope.analysis.bias`'s; :func:`run_bias` returns the JSON answer of
``attnscope bias --json`` (documented in the README: Bias probes).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from attnscope.analysis.bias import (
    DEFAULT_CONFIDENCE,
    DEFAULT_RESAMPLES,
    bootstrap_indices,
    bootstrap_mean,
    check_bootstrap,
    pair_gap,
    term_mass,
    term_tokens,
    top_heads,
)
from attnscope.analysis.bias_suite import Pair, Suite, Variant
from attnscope.attribution.scorers.model import ModelScorer
from attnscope.attribution.targets import require_causal
from attnscope.capture.engine import capture_tokens
from attnscope.capture.selection import resolve_index
from attnscope.capture.stash import Stash
from attnscope.capture.tokens import Token, tokenize
from attnscope.contracts import SCHEMA_VERSION, plain
from attnscope.errors import InputError
from attnscope.methods.bias_suites import load_suite
from attnscope.models.loaded import LoadedModel
from attnscope.models.provenance import new_record, utc_now
from attnscope.progress import adapt, report, scaled

TOP_HEADS = 5  # heads listed per pair and per term role
TOP_PREDICTIONS = 5  # next-token candidates shown per variant
INTERVAL = "percentile bootstrap over pairs"


def variant_tokens(model: LoadedModel, variant: Variant) -> tuple[list[Token], int]:
    """(tokens of prompt + continuation with spans into ``variant.full_text``, how many are the prompt's)."""
    head = tokenize(model.tokenizer, variant.prompt)
    whole = tokenize(model.tokenizer, variant.full_text)
    if len(whole) > len(head) and [t.id for t in whole[: len(head)]] == [t.id for t in head]:
        return whole, len(head)
    shift = len(variant.prompt)
    tail = tokenize(model.tokenizer, variant.continuation, add_special_tokens=False)
    if not tail:
        raise InputError(f"the continuation {variant.continuation!r} gives no tokens")
    moved = [
        Token(len(head) + t.index, t.id, t.text, None if t.start is None else t.start + shift,
              None if t.end is None else t.end + shift, t.special)
        for t in tail
    ]  # fmt: skip
    return [*head, *moved], len(head)


def run_bias(
    model: LoadedModel,
    suite: str | Path | dict[str, Any] | Suite,
    *,
    layers: Iterable[int] | None = None,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    confidence: float = DEFAULT_CONFIDENCE,
    top: int = TOP_HEADS,
    progress: Any = None,
) -> dict[str, Any]:
    """Run every pair of ``suite`` (a packaged name, a file path, suite JSON or a :class:`Suite`)
    through causal ``model``; the answer of ``attnscope bias --json``.

    Args:
        layers: measure attention in these layers only (negative allowed); default all.
        resamples, seed, confidence: the bootstrap over pairs (:mod:`attnscope.analysis.bias`).
        top: heads listed per pair and per term role (1-100).
        progress: ``progress(done, total[, stage])`` after each variant; may raise ``CancelledError``.
    """
    started_at = utc_now()
    check_bootstrap(resamples, confidence)
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or not 0 <= int(seed) < 2**63:
        raise InputError(f"seed must be a whole number ≥ 0, not {seed!r}")
    if not 1 <= int(top) <= 100:
        raise InputError(f"top must be between 1 and 100, not {top}")
    suite = load_suite(suite)
    require_causal(model, "bias probes")
    scorer = ModelScorer(model)
    count = model.arch.layers
    wanted = (
        None if layers is None else sorted({resolve_index(x, count, "layer", model.name, "layers") for x in layers})
    )
    shown = list(range(count)) if wanted is None else wanted
    variants = [variant for pair in suite.pairs for variant in pair.variants]
    sequences = [variant_tokens(model, variant) for variant in variants]
    term_tokens_of = []  # per variant: {role: token indexes}, checked before the model runs
    for index, (tokens, _) in enumerate(sequences):
        variant, pair = variants[index], suite.pairs[index // 2]
        model.check_length(len(tokens), "a probe with its continuation")
        spans = [(t.start, t.end) for t in tokens]
        found = {term.role: term_tokens(spans, term.start, term.end) for term in variant.terms}
        empty = next((role for role, indexes in found.items() if not indexes), None)
        if empty is not None:
            raise InputError(f"pair {pair.id}: term {empty!r} covers no token of {variant.full_text!r}")
        term_tokens_of.append(found)
    bar = adapt(progress)
    scored = scorer.score_ids(
        [[t.id for t in tokens] for tokens, _ in sequences],
        [prompt for _, prompt in sequences],
        scaled(bar, 0, len(variants), 2 * len(variants), "scoring"),
    )
    measured, backends = [], set()
    for index, (variant, (tokens, prompt)) in enumerate(zip(variants, sequences, strict=True)):
        report(bar, len(variants) + index, 2 * len(variants), "attention")
        pair = suite.pairs[index // 2]
        query = prompt - 1 if pair.query == "prediction" else len(tokens) - 1
        trace = capture_tokens(
            model, variant.full_text, tokens, [], (None, None), "auto", None if wanted is None else set(wanted),
            1, "none", Stash("device"), None,
        )  # fmt: skip
        backends.add(trace.backend)
        rows = np.stack(
            [trace.attention(layer, head=None, rows=[query])[:, 0] for layer in shown]
        )  # (layers, heads, keys)
        found = term_tokens_of[index]
        next_logprobs = scored[index].next_logprobs
        assert next_logprobs is not None  # the in-process scorer always has the distribution
        best = next_logprobs.topk(TOP_PREDICTIONS)
        top_predictions = [
            {"id": int(i), "token": model.tokenizer.decode([int(i)]), "prob": float(np.exp(v))}
            for v, i in zip(best.values.tolist(), best.indices.tolist(), strict=True)
        ]
        measured.append(
            {
                "identity": variant.identity,
                "text": variant.prompt,
                "continuation": variant.continuation,
                "prob": float(np.exp(scored[index].logprob)),
                "logprob": float(scored[index].logprob),
                "tokens": [t.to_dict() for t in tokens],
                "continuation_tokens": len(tokens) - prompt,
                "query": query,
                "terms": [{**term.to_dict(variant.full_text), "tokens": found[term.role]} for term in variant.terms],
                "top": top_predictions,
                "mass": {role: term_mass(rows, indexes) for role, indexes in found.items()},
            }
        )
    report(bar, 2 * len(variants), 2 * len(variants), "attention")
    pairs = [_pair_json(pair, measured[2 * i], measured[2 * i + 1], shown, top) for i, pair in enumerate(suite.pairs)]
    summary = summarize(pairs, suite, shown, resamples=resamples, seed=int(seed), confidence=confidence, top=top)
    options = {
        "suite": suite.name, "suite_sha256": suite.sha256, "pairs": len(suite.pairs), "resamples": int(resamples),
        "seed": int(seed), "confidence": float(confidence), "top": int(top), "interval": INTERVAL,
    }  # fmt: skip
    record = new_record(
        model.provenance,
        started_at=started_at,
        method="bias",
        method_options=options,
        backend=sorted(backends)[0] if len(backends) == 1 else None,
        top_k=None,
        predict="none",
        layers_captured="all" if wanted is None else wanted,
    )
    for entry in pairs:  # arrays as JSON values, rounded (a mass is a sum of raw softmax weights)
        entry["heads"] = _rounded(entry["heads"])
    return plain(
        {
            "schema_version": SCHEMA_VERSION,
            "result": "bias",
            "suite": suite.to_dict(),
            "model": model.info().to_dict(),
            "pairs": pairs,
            "summary": summary,
            "provenance": record,
        }
    )


def _pair_json(
    pair: Pair, first: dict[str, Any], second: dict[str, Any], layers: list[int], top: int
) -> dict[str, Any]:
    difference = {role: first["mass"][role] - second["mass"][role] for role in pair.roles}
    cells: list[dict[str, Any]] = [
        {"role": role, "layer": layer, "head": head, "difference": value,
         "first": float(first["mass"][role][layers.index(layer), head]),
         "second": float(second["mass"][role][layers.index(layer), head])}
        for role in pair.roles
        for layer, head, value in top_heads(difference[role], top, layers)
    ]  # fmt: skip
    cells.sort(key=lambda cell: -abs(cell["difference"]))
    variants = [{key: value for key, value in v.items() if key != "mass"} for v in (first, second)]
    return {
        "id": pair.id,
        "template": pair.template,
        "tags": list(pair.tags),
        "variants": variants,
        "gap": pair_gap(first["logprob"], second["logprob"]),
        "heads": {
            "query": pair.query,
            "layers": layers,
            "roles": pair.roles,
            "mass": [first["mass"], second["mass"]],  # per variant: {role: (layers, heads)}
            "difference": difference,  # {role: (layers, heads)}: first - second
            "top": cells[:top],
        },
    }


def summarize(
    pairs: list[dict[str, Any]], suite: Suite, layers: list[int], *, resamples: int, seed: int, confidence: float,
    top: int,
) -> dict[str, Any]:  # fmt: skip
    """Means over pairs with bootstrap intervals: gaps, probabilities, the share of pairs preferring the
    first variant, the same per tag, and per term role the mean difference map and its top heads."""
    indices = bootstrap_indices(len(pairs), resamples, seed)

    def gaps(group: list[dict[str, Any]], rows: np.ndarray) -> dict[str, Any]:
        return {key: bootstrap_mean([p["gap"][key] for p in group], rows, confidence=confidence).to_dict()
                for key in ("prob", "logprob", "share")}  # fmt: skip

    summary: dict[str, Any] = {
        "pairs": len(pairs),
        "order": list(suite.order),
        "interval": INTERVAL,
        "confidence": confidence,
        "resamples": resamples,
        "seed": seed,
        "gap": gaps(pairs, indices),
        "prob": {
            side: bootstrap_mean([p["variants"][i]["prob"] for p in pairs], indices, confidence=confidence).to_dict()
            for i, side in enumerate(("first", "second"))
        },
        "prefers_first": bootstrap_mean(
            [float(p["gap"]["logprob"] > 0) for p in pairs], indices, confidence=confidence
        ).to_dict(),
        "by_tag": {},
        "heads": {},
    }
    for tag in sorted({tag for p in pairs for tag in p["tags"]}):
        group = [p for p in pairs if tag in p["tags"]]
        rows = bootstrap_indices(len(group), resamples, seed)
        summary["by_tag"][tag] = {"pairs": len(group), "gap": gaps(group, rows)}
    for role in dict.fromkeys(role for p in pairs for role in p["heads"]["roles"]):
        group = [p for p in pairs if role in p["heads"]["roles"]]
        maps = np.stack([p["heads"]["difference"][role] for p in group])  # (pairs, layers, heads)
        found = bootstrap_mean(maps, bootstrap_indices(len(group), resamples, seed), confidence=confidence)
        cells = []
        for layer, head, value in top_heads(found.mean, top, layers):
            row = layers.index(layer)
            low, high = float(found.low[row, head]), float(found.high[row, head])
            cells.append({"layer": layer, "head": head, "mean": value, "low": low, "high": high,
                          "excludes_zero": bool(low > 0 or high < 0)})  # fmt: skip
        summary["heads"][role] = {
            "pairs": len(group),
            "queries": sorted({p["heads"]["query"] for p in group}),
            "layers": layers,
            "mean_difference": np.round(found.mean, 6),
            "top": cells,
        }
    return summary


def _rounded(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return np.round(value, 6)
    if isinstance(value, dict):
        return {key: _rounded(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_rounded(item) for item in value]
    return value
