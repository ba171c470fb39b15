"""Text table of a model comparison (``attnscope compare TEXT --model A --model B`` without ``--json``)."""

from __future__ import annotations

from typing import Any


def _number(value: float | None) -> str:
    return "—" if value is None else f"{value:.3g}"


def model_comparison_text(body: dict[str, Any]) -> str:
    """Both tokenizations and predictions, the difference per matched layer, head-metric means and
    the attribution side by side (A = ``model``, B = ``model_b``; differences are A − B)."""
    lines = []
    for side, model in (("A", body["model"]), ("B", body["model_b"])):
        info = body["models"][0 if side == "A" else 1]
        tokens = " ".join(repr(t["text"]) for t in info["tokens"])
        lines.append(f"{side}: {model['name']} ({info['layers']} layers × {info['heads']} heads)")
        lines.append(f"   tokens ({len(info['tokens'])}): {tokens}")
        if info["predictions"]:
            guesses = ", ".join(f"{p['token']!r} {p['prob'] * 100:.3g}%" for p in info["predictions"])
            lines.append(f"   next token: {guesses}")
    if body["same_model"]:
        lines.append("A and B are the same model (same fingerprint): every difference is 0")
    units = [u["text"] for u in body["units"]]
    lines.append(f"common units ({len(units)}): {' | '.join(units)}")
    lines.append(f"layers matched by depth: {body['layer_match']['formula']}; heads: their mean")
    metrics = body["head_metrics"]["metrics"]
    lines.append("layer A→B   max|Δ|    mean|Δ|   entropy A/B      sink A/B")
    for layer in body["difference"]["layers"]:
        entropy, sink, index = metrics["entropy"], metrics["sink"], layer["layer_a"]
        lines.append(
            f"{layer['layer_a']:>5}→{layer['layer_b']:<4} {layer['max_abs']:<9.3g} {layer['mean_abs']:<9.3g} "
            f"{_number(entropy['a'][index])}/{_number(entropy['b'][index]):<10} "
            f"{_number(sink['a'][index])}/{_number(sink['b'][index])}"
        )
    attribution = body["attribution"]
    if attribution is not None:
        lines.append(
            f"attribution ({attribution['method']}) per unit: Spearman ρ {_number(attribution['spearman'])}, "
            f"Kendall τ-b {_number(attribution['kendall'])} over {attribution['n_units']} units"
        )
        for text, a, b in zip(units, attribution["a"], attribution["b"], strict=True):
            lines.append(f"   {text!r:<16} A {_number(a):<10} B {_number(b)}")
    return "\n".join(lines)
