"""Text tables of the CLI, built from the same JSON contracts that ``--json`` prints."""

from __future__ import annotations

from typing import Any

from attnscope.models.disk import human_bytes
from attnscope.render.text import display_width, dp_line, pad


def signed_bar(value: float | None, scale: float, width: int = 24) -> str:
    """``█`` for positive values, ``░`` for negative ones, ``|value| / scale`` of ``width`` long."""
    if value is None or scale <= 0:
        return ""
    filled = round(min(1.0, abs(value) / scale) * width)
    return ("█" if value >= 0 else "░") * filled


def attribution_text(body: dict[str, Any]) -> str:
    target = body["target"]
    model = (body.get("model") or {}).get("spec", "black-box scorer")
    lines = [f"{body['method']} · {model} · explains {target['text']!r} ({body['objective']}) at token {body['query']}"]
    lines += filter(None, [dp_line(body)])
    details = body["details"]
    for key in ("delta", "f", "base_logprob", "steps"):
        if isinstance(details.get(key), int | float):
            lines.append(f"{key}: {details[key]:.6g}")
    if details.get("warning"):
        lines.append(f"warning: {details['warning']}")
    finite = [abs(s) for s in body["scores"] if s is not None]
    scale = max(finite) if finite else 0.0
    width = min(30, max((display_width(u["text"]) for u in body["units"]), default=4))
    bounded = set(details.get("bounded_units") or [])  # the scorer gave only a bound: the drop is at least this
    for index, (unit, score) in enumerate(zip(body["units"], body["scores"], strict=True)):
        shown = unit["text"].replace("\n", "↵")
        value = "       —" if score is None else ("≥" if index in bounded else " ") + f"{score:>+9.4f}"
        lines.append(f"{pad(shown, width)}  {value}  {signed_bar(score, scale)}")
    return "\n".join(lines)


def heads_text(body: dict[str, Any]) -> str:
    lines = [f"{body['model']['spec']}: {body['n_tokens']} tokens; label per head (layer rows, head columns)"]
    for layer, row in enumerate(body["labels"]):
        lines.append(f"L{layer:<3} " + " ".join(f"{label:<14}" for label in row))
    if body.get("note"):
        lines.append(f"note: {body['note']}")
    return "\n".join(lines)


def parts_text(body: dict[str, Any]) -> str:
    names = body["parts"]
    width = max(8, *(display_width(n) for n in names))
    lines = [f"attention mass from {body['query_label']} to each part (mean over heads), layer by layer", ""]
    lines.append("layer  " + "  ".join(pad(n, width) for n in names))
    for layer, row in enumerate(body["mean_over_heads"]):
        cells = ["—".rjust(width) if v is None else f"{v:>{width}.4f}" for v in row]
        lines.append(f"{layer:>5}  " + "  ".join(cells))
    return "\n".join(lines)


def agreement_text(body: dict[str, Any]) -> str:
    """Every pair of methods with Spearman's rho and Kendall's tau, best agreement first."""
    agreement = body["agreement"]
    names = agreement["methods"]
    lines = [f"rank agreement over {body['granularity']} units up to the query (Spearman ρ, Kendall τ)", ""]
    pairs = [(i, j) for i in range(len(names)) for j in range(i + 1, len(names))]
    pairs.sort(
        key=lambda p: -(agreement["spearman"][p[0]][p[1]] if agreement["spearman"][p[0]][p[1]] is not None else -9)
    )
    width = max((len(names[i]) + len(names[j]) + 3 for i, j in pairs), default=10)
    for i, j in pairs:
        rho, tau = agreement["spearman"][i][j], agreement["kendall"][i][j]
        shown = "undefined (constant scores or under 3 units)" if rho is None else f"ρ {rho:+.3f}  τ {tau:+.3f}"
        lines.append(f"{pad(names[i] + ' – ' + names[j], width)}  {shown}  ({agreement['n_units'][i][j]} units)")
    for name, why in body["skipped"].items():
        lines.append(f"skipped {name}: {why}")
    return "\n".join(lines)


def comparison_text(body: dict[str, Any]) -> str:
    lines = []
    for index, summary in enumerate(body["prompts"]):
        prediction = summary["prediction"]
        guess = f"{prediction['token']!r} p={prediction['prob']:.4f}" if prediction else "—"
        means = summary["head_means"]
        lines.append(f"[{index}] {summary['text']!r}")
        lines.append(
            f"    tokens {summary['n_tokens']} · prediction {guess} · mean head entropy {means['entropy']:.3f} "
            f"· sink {means['sink']:.3f}"
        )
        lines.append(
            "    most attended: " + ", ".join(f"{u['text']!r} {u['attention']:.3f}" for u in summary["top_units"])
        )
    difference = body["difference"]
    if difference is not None:
        lines.append(
            f"difference (layer {difference['layer']}, head {difference['head']}) on {len(difference['pairs'])} shared "
            f"tokens: max |Δ| = {difference['max_abs']:.4f}; only in first: {len(difference['only_a'])}, "
            f"only in second: {len(difference['only_b'])}"
        )
    return "\n".join(lines)


def methods_text(body: dict[str, Any]) -> str:
    rows = body["methods"]
    width = max(len(m["name"]) for m in rows)
    lines = []
    for method in rows:
        needs = "+".join(method["needs"])
        limit = f"; at most {method['max_tokens']} tokens" if method["max_tokens"] else ""
        lines.append(f"{method['name']:<{width}}  {method['family']:<12} {needs:<8} {method['description']}{limit}")
        for option in method["options"]:
            limits = ""
            if option["choices"]:
                limits = " | ".join(option["choices"])
            elif option["minimum"] is not None or option["maximum"] is not None:
                limits = f"{option['minimum']:g}..{option['maximum']:g}"
            default = option["default"]
            lines.append(f"{'':<{width}}    --{option['name']} {limits} (default {default}): {option['help']}")
    return "\n".join(lines)


def methods_markdown(body: dict[str, Any]) -> str:
    """The README's method table (a test checks the README holds exactly this)."""
    lines = ["| method | family | needs | what it scores | options |", "|---|---|---|---|---|"]
    for method in body["methods"]:
        options = ", ".join(f"`{o['name']}` ({o['default']})" for o in method["options"]) or "—"
        limit = f"; at most {method['max_tokens']} tokens" if method["max_tokens"] else ""
        needs = ", ".join(method["needs"])
        what = method["description"] + limit
        lines.append(f"| `{method['name']}` | {method['family']} | {needs} | {what} | {options} |")
    return "\n".join(lines)


def _bytes(count: int | None) -> str:
    return "—" if count is None else human_bytes(count)


def doctor_text(body: dict[str, Any]) -> str:
    """``attnscope doctor``: the device, dtype, memory and stash budget, one fact a line."""
    accelerator = body["accelerator"]
    host = body["host"]
    versions = body["versions"]
    rows = [
        ("device", body["device"]),
        ("dtype", body["dtype"]),
        ("accelerator", "none" if accelerator is None else accelerator["name"]),
    ]
    if accelerator is not None and "total_bytes" in accelerator:
        rows.append(("  memory", f"{_bytes(accelerator['free_bytes'])} free of {_bytes(accelerator['total_bytes'])}"))
    rows += [
        ("host memory", f"{_bytes(host['available_bytes'])} available of {_bytes(host['total_bytes'])}"),
        ("host CPU", f"{host['cpu']}, {host['cpu_count']} cores, torch uses {host['torch_threads']} threads"),
        ("stash", f"{body['stash']['policy']}: {body['stash']['note']}"),
        ("  device budget", _bytes(body["stash"]["device_budget_bytes"])),
        ("versions", ", ".join(f"{name} {value}" for name, value in versions.items() if value)),
    ]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name.ljust(width)}  {value}" for name, value in rows)
