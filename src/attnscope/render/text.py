"""Readable terminal output of an analysis: tokens with weight bars, and the top predictions."""

from __future__ import annotations

import json
import unicodedata
from typing import Any

_EIGHTHS = " ▏▎▍▌▋▊▉"
BAR_WIDTH = 40  # characters for a weight (or probability) of 1.0


def bar(value: float, width: int = BAR_WIDTH) -> str:
    """A horizontal bar whose length is ``value`` of ``width`` characters, in eighths."""
    eighths = max(0, round(float(value) * width * 8))
    full, rest = divmod(eighths, 8)
    return "█" * full + (_EIGHTHS[rest] if rest else "")


def display_width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def quoted(text: str) -> str:
    """A token's text with whitespace made visible and quotes around it."""
    return json.dumps(text, ensure_ascii=False)


def pad(text: str, width: int) -> str:
    return text + " " * max(0, width - display_width(text))


def dp_line(result: dict[str, Any]) -> str | None:
    """The line saying that an answer's numbers are noised (its ``dp`` block), or None for exact numbers."""
    dp = result.get("dp")
    if not dp:
        return None
    mechanism = f"{dp['mechanism'].capitalize()} ({dp['sensitivity_norm']} sensitivity {dp['sensitivity']:.4g}, "
    mechanism += f"scale {dp['noise_scale']:.4g}" + (f", δ = {dp['delta']:g}" if dp.get("delta") is not None else "")
    withheld = f"; withheld: {', '.join(dp['withheld'])}" if dp["withheld"] else ""
    return (
        f"noised  differential privacy: ε = {dp['epsilon']:g}, {mechanism}); {', '.join(dp['released'])} "
        f"noised (may be negative, need not sum to 1){withheld}"
    )


def analysis_text(result: dict[str, Any]) -> str:
    model = result["model"]
    attention = result["attention"]
    tokens = (
        result["tokens"]
        if attention["stack"] in ("encoder", "cross")
        else result.get("target_tokens", result["tokens"])
    )
    query_tokens = result.get("target_tokens", tokens) if attention["stack"] != "encoder" else tokens
    query_token = query_tokens[attention["query"]]
    lines = [
        f"model   {model['spec']} — {model['name']}",
        f"        {model['kind']}, {model['layers']} layers x {model['heads']} heads "
        f"({model['kv_heads']} KV heads), vocab {model['vocab_size']:,}, tokenizer {model['tokenizer']}",
        f"view    {attention['label']} {quoted(query_token['text'])}, backend {result['provenance']['backend']}",
        *filter(None, [dp_line(result)]),
        "",
    ]
    labels = [quoted(t["text"]) + (" (special)" if t["special"] else "") for t in tokens]
    label_width = min(32, max(display_width(label) for label in labels))
    lines.append(f"{'#':>5}  {pad('token', label_width)}  {'id':>7}  {'weight':>8}")
    for token, label, weight in zip(tokens, labels, attention["weights"], strict=True):
        lines.append(f"{token['index']:>5}  {pad(label, label_width)}  {token['id']:>7}  {weight:8.4f}  {bar(weight)}")
    lines.append(f"{'':>5}  {pad('sum', label_width)}  {'':>7}  {sum(attention['weights']):8.4f}")
    stats = result.get("stats", {}).get("raw")
    if stats:
        lines.append(
            f"        entropy {stats['entropy_nats']:.4f} nats; 90% of the weight on {stats['mass90_tokens']} "
            f"of {len(tokens)} tokens; largest on token {stats['argmax']}"
            + (" (of the noised row)" if result.get("dp") else "")
        )
    prediction = result.get("prediction")
    if prediction:
        lines += ["", f"prediction after token {prediction['position']} (raw softmax probabilities):"]
        top = prediction["top"]
        width = min(24, max(display_width(quoted(c["token"])) for c in top))
        for rank, candidate in enumerate(top, start=1):
            lines.append(
                f"{rank:>5}. {pad(quoted(candidate['token']), width)}  {candidate['id']:>7}  "
                f"{candidate['prob']:8.4f}  {bar(candidate['prob'])}"
            )
    elif result.get("dp"):
        lines += ["", "prediction: withheld (differential privacy: the top-k would reveal the exact distribution)"]
    else:
        lines += ["", "prediction: none (this model has no next-token head)"]
    lines += ["", f"bars: {BAR_WIDTH} characters = 1.0"]
    return "\n".join(lines)


def generation_text(result: dict[str, Any]) -> str:
    """``attnscope generate``: the generated text, then one line per step (token, probability, the
    runners-up, and the prompt or generated token the step attended to most)."""
    model = result["model"]
    steps = result["steps"]
    stack = steps[0]["attention"]["stack"] if steps else "decoder"
    tokens = result["prompt"]["tokens"] + result["generated"]["tokens"]  # the keys of a causal model's rows
    if "target_tokens" in result:  # encoder-decoders: cross rows over the input, decoder rows over start + answer
        tokens = result["target_tokens"] if stack == "decoder" else result["prompt"]["tokens"]
    view = steps[0]["attention"]["label"] if steps else ""
    lines = [
        f"model   {model['spec']} — {model['name']}",
        f"prompt  {quoted(result['prompt']['text'])}",
        f"answer  {quoted(result['generated']['text'])}",
        f"        {len(steps)} tokens, stopped by {result['stop_reason']}; attention: {view}",
        "",
    ]
    labels = [quoted(step["token"]["text"]) for step in steps]
    width = min(20, max((display_width(label) for label in labels), default=5))
    lines.append(
        f"{'step':>5}  {pad('token', width)}  {'prob':>7}  {'cum logp':>8}  {pad('attended most', 22)}  runners-up"
    )
    for step, label in zip(steps, labels, strict=True):
        weights = step["attention"]["weights"]
        top_key = max(range(len(weights)), key=weights.__getitem__)
        most = f"{quoted(tokens[top_key]['text'])} #{top_key} {weights[top_key]:.2f}"
        others = ", ".join(
            f"{quoted(c['token'])} {c['prob']:.3g}" for c in step["top"][:4] if c["id"] != step["token"]["id"]
        )
        lines.append(
            f"{step['step']:>5}  {pad(label, width)}  {step['prob']:7.4f}  {step['logprob_cum']:8.3f}  "
            f"{pad(most, 22)}  {others}"
        )
    lines += ["", "cum logp: the sum of the steps' log-probabilities so far (natural log)"]
    lines += _beam_lines(result.get("beam_tree", []))
    attribution = result.get("attribution")
    if attribution:
        keys = result["prompt"]["tokens"] + result["generated"]["tokens"]
        lines += ["", f"{attribution['method']} per step: the three earlier tokens scored highest (|score|)"]
        for step, label, scores in zip(steps, labels, attribution["scores"], strict=True):
            order = sorted(range(len(scores)), key=lambda i: -abs(scores[i] or 0.0))[:3]
            best = ", ".join(f"{quoted(keys[i]['text'])} #{i} {scores[i]:+.3g}" for i in order if scores[i] is not None)
            lines.append(f"{step['step']:>5}  {pad(label, width)}  {best}")
    return "\n".join(lines)


BEAM_STEPS_SHOWN = 8


def _beam_lines(tree: list[list[dict[str, Any]]]) -> list[str]:
    """Per step, the beams (token, cum logp; * on the returned sequence's path; "ended": a finished hypothesis)."""
    if not tree:
        return []
    lines = ["", "beams after each step (token, cum logp; * the returned sequence, ended: a finished hypothesis)"]
    for step, level in enumerate(tree[:BEAM_STEPS_SHOWN]):
        beams = [
            f"{quoted(node['token']['text'])}{'*' if node['best'] else ''} {_logp(node['logprob_cum'])}"
            + (" ended" if node["finished"] else "")
            for node in level
        ]
        lines.append(f"{step:>5}  " + ", ".join(beams))
    if len(tree) > BEAM_STEPS_SHOWN:
        lines.append(f"       … {len(tree) - BEAM_STEPS_SHOWN} more steps (--json has every beam)")
    return lines


def _logp(value: float | None) -> str:
    return "-inf" if value is None else f"{value:.3f}"  # plain() writes -inf as null
