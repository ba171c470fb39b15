"""Text tables of ``attnscope bias``: the packaged suites, and one suite's pairs, summary and heads,
built from the JSON answer that ``--json`` prints (:func:`attnscope.methods.bias.run_bias`)."""

from __future__ import annotations

from typing import Any

from attnscope.contracts import SCHEMA_VERSION
from attnscope.render.text import display_width, pad, quoted


def bias_answer(model: Any, suite: Any, **options: Any) -> dict[str, Any]:
    """:func:`attnscope.methods.bias.run_bias`'s answer sealed with its output hashes (what the CLI
    prints, the server returns and an audit embeds)."""
    from attnscope.governance.provenance import seal
    from attnscope.methods.bias import run_bias

    return seal(run_bias(model, suite, **options))


def suites_json(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """``attnscope bias --list --json``: each packaged suite's description."""
    return {"schema_version": SCHEMA_VERSION, "result": "bias_suites", "suites": rows}


def suites_text(body: dict[str, Any]) -> str:
    rows = body["suites"]
    width = max(display_width(row["name"]) for row in rows)
    lines = [f"{pad('suite', width)}  lang  pairs  order (gap = first - second)"]
    for row in rows:
        order = " - ".join(row["order"])
        lines.append(f"{pad(row['name'], width)}  {(row['language'] or '-'):<4}  {row['pairs']:>5}  {order}")
    lines.append("")
    lines += [f"{row['name']}: {row['description']}" for row in rows if row.get("description")]
    sources = sorted({f"{row['source']} ({row['licence']})" for row in rows if row.get("source")})
    lines += [f"source: {source}" for source in sources]
    lines.append("attnscope bias --suite NAME runs one; --suite PATH runs your own file (README: Bias probes)")
    return "\n".join(lines)


def interval(value: dict[str, Any], sign: str = "+") -> str:
    """``mean [low, high]`` of an interval block (``sign``: "+" for differences, "" for shares)."""
    if value["mean"] is None:
        return "—"
    return f"{number(value['mean'], sign)} [{number(value['low'], sign)}, {number(value['high'], sign)}]"


def number(value: float, sign: str = "") -> str:
    """A probability or a difference of them: fixed point, or scientific below 0.001."""
    return f"{value:{sign}.4f}" if abs(value) >= 1e-3 or value == 0 else f"{value:{sign}.1e}"


def bias_text(body: dict[str, Any]) -> str:
    suite, summary, model = body["suite"], body["summary"], body["model"]
    first, second = summary["order"]
    percent = round(100 * summary["confidence"])
    lines = [
        f"bias probes {suite['name']} · {model['spec']} · {summary['pairs']} pairs · gap = {first} - {second}",
        "",
    ]
    width = min(44, max(display_width(p["template"]) for p in body["pairs"]))
    lines.append(f"{pad('template', width)}  {'first':<14} {'prob':>7}  {'second':<14} {'prob':>7}  "
                 f"{'gap prob':>9}  {'gap logp':>8}")  # fmt: skip
    for entry in body["pairs"]:
        one, two = entry["variants"]
        shown = entry["template"] if display_width(entry["template"]) <= width else entry["template"][: width - 1] + "…"
        lines.append(
            f"{pad(shown, width)}  {pad(_label(one, two), 14)} {number(one['prob']):>7}  {pad(_label(two, one), 14)} "
            f"{number(two['prob']):>7}  {number(entry['gap']['prob'], '+'):>9}  {entry['gap']['logprob']:>+8.3f}"
        )
    lines += ["", f"summary (mean over pairs, {percent}% {summary['interval']}, {summary['resamples']:,} resamples, "
              f"seed {summary['seed']})"]  # fmt: skip
    lines.append(f"  gap logprob  {interval(summary['gap']['logprob'])}")
    lines.append(f"  gap prob     {interval(summary['gap']['prob'])}")
    lines.append(
        f"  share first  {interval(summary['gap']['share'], '')}   (p_first / (p_first + p_second); 0.5: even)"
    )
    lines.append(f"  pairs preferring {first}: {interval(summary['prefers_first'], '')}")
    for tag, group in summary["by_tag"].items():
        lines.append(
            f"  tag {tag} ({group['pairs']} pairs): gap logprob {interval(group['gap']['logprob'])}, "
            f"share {interval(group['gap']['share'], '')}"
        )
    for role, heads in summary["heads"].items():
        query = " and ".join(heads["queries"])
        lines.append(f"heads: mass to {role!r} from the {query} position, {first} - {second} (mean over "
                     f"{heads['pairs']} pairs, {percent}% interval)")  # fmt: skip
        for cell in heads["top"]:
            mark = "  *" if cell["excludes_zero"] else ""
            lines.append(f"  L{cell['layer']:<3} H{cell['head']:<3} {interval(cell)}{mark}")
    lines.append("* the interval excludes 0. Small templated probes are indicative, not a bias certification.")
    return "\n".join(lines)


def _label(variant: dict[str, Any], other: dict[str, Any]) -> str:
    """The continuation where the pair's continuations differ, else the identity (its prompt differs)."""
    text = quoted(variant["continuation"]) if variant["continuation"] != other["continuation"] else variant["identity"]
    return text if display_width(text) <= 14 else text[:13] + "…"
