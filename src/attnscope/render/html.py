"""A self-contained HTML report from the report data of :func:`attnscope.render.json.report_json`.

One file, no network: CSS inline, head-metric heatmaps as matplotlib PNGs in ``data:`` URIs, the
report data itself embedded as JSON. Token-importance views colour each unit by its score divided
by the method's largest |score| (display scaling, labelled); the raw values are in the tables and
tooltips. Colours and numbers come from the palette the web page uses (:mod:`attnscope.render.palette`,
``web/palette.json``): the same colormap stops, red/teal for signed scores, head-label colours, and
every number in the page's format (3 significant digits, probabilities as percentages). The words
are in the report's language (:mod:`attnscope.render.language`: English or Simplified Chinese).
"""

from __future__ import annotations

import base64
import html
import json
from typing import Any

import numpy as np

from attnscope.render.language import metric_title, threshold_name, words
from attnscope.render.palette import (
    colour,
    fmt,
    fmt_prob,
    ink_on_css,
    label_colour,
    label_colours,
    palette,
    rgb,
)
from attnscope.render.text import dp_line

STYLE = """
body{font-family:system-ui,"Noto Sans CJK SC","Noto Sans",sans-serif;margin:2rem;max-width:1200px;color:INK}
h1{font-size:1.4rem} h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5rem 0} td,th{border:1px solid #ddd;padding:2px 6px;font-size:.85rem}
th{background:#f4f4f4} .num{text-align:right;font-variant-numeric:tabular-nums}
.units{line-height:2;white-space:pre-wrap;font-size:1rem;border:1px solid #eee;padding:.5rem}
.unit{border-radius:3px;padding:1px 0} .special{border:1px dashed #999;font-size:.8rem}
.grid img{max-width:100%} .grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(360px,1fr));gap:1rem}
.labels td{width:14px;height:14px;padding:0} .note{color:MUTED;font-size:.85rem}
.bar{display:inline-block;width:160px;height:10px;border:1px solid #ddd;vertical-align:middle;margin:0 .3rem}
.chip{border:1px solid #999;padding:0 6px;border-radius:3px;font-size:.8rem}
table.kv{margin:0} table.kv th,table.kv td{border:0;border-bottom:1px solid #eee;padding:0 8px 0 0;font-size:.8rem}
table.kv th{background:none;text-align:left;font-weight:normal;color:MUTED}
.provenance>tbody>tr>td,.provenance>tr>td{vertical-align:top}
"""


def _style() -> str:
    ink = palette()["ink"]
    return STYLE.replace("INK", ink["text"]).replace("MUTED", ink["muted"])


def _ink_on(hex_colour: str) -> str:
    """Black or white text, whichever contrasts more (WCAG ≥ 4.5; as ``inkOn`` in ``palette.js``)."""
    return ink_on_css(hex_colour)


def _score_bar(scale: float, signed: bool, caption: str = "score") -> str:
    """The colour bar of a unit view: teal (−scale) through white (0) to red (+scale), or white to red."""
    (pr, pg, pb), (nr, ng, nb) = rgb("positive"), rgb("negative")
    low = f"rgb({nr},{ng},{nb}),#fff 50%" if signed else "#fff"
    gradient = f"linear-gradient(to right,{low},rgb({pr},{pg},{pb}))"
    return (
        f"<span class='note'>{html.escape(fmt(-scale) if signed else '0')}</span>"
        f"<span class='bar' style='background:{gradient}'>"
        f"</span><span class='note'>{html.escape(fmt(scale))} ({html.escape(caption)})</span>"
    )


def _unit_view(data: dict[str, Any], method: str, caption: str = "score") -> str:
    body = data["methods"][method]
    scores = body["scores"]
    finite = [abs(s) for s in scores if s is not None]
    scale = max(finite) if finite else 0.0
    text = data["text"]
    pieces: list[str] = []
    position = 0
    for unit, score in zip(body["units"], scores, strict=True):
        label = fmt(score)
        if unit["start"] is None:
            pieces.append(f'<span class="unit special" title="{html.escape(label)}">{html.escape(unit["text"])}</span>')
            continue
        pieces.append(html.escape(text[position : unit["start"]]))
        exact = "" if score is None else repr(float(score))
        pieces.append(
            f'<span class="unit" data-score="{exact}" title="{html.escape(label)}" '
            f'style="background:{colour(score, scale)}">{html.escape(unit["text"])}</span>'
        )
        position = unit["end"]
    pieces.append(html.escape(text[position:]))
    bar = _score_bar(scale, any(s is not None and s < 0 for s in scores), caption)
    return f'<p>{bar}</p><div class="units" data-method="{html.escape(method)}">{"".join(pieces)}</div>'


def _heatmap_png(values: list[list[float | None]], title: str, axes: tuple[str, str] = ("head", "layer")) -> str:
    """A layers × heads heatmap (:func:`attnscope.render.figures.heatmap`: the palette's sequential
    colormap, labelled axes, a colour bar in the house number format) as a ``data:`` URI."""
    from attnscope.render.figures import heatmap

    array = [[np.nan if v is None else v for v in row] for row in values]
    bar_label = title.split(" (")[0].split("（")[0]
    png = heatmap(array, title, xlabel=axes[0], ylabel=axes[1], bar_label=bar_label)
    return "data:image/png;base64," + base64.b64encode(png).decode()


def _table(header: list[str], rows: list[list[str]], cls: str = "") -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(cell for cell in row) + "</tr>" for row in rows)
    return f'<table class="{cls}"><tr>{head}</tr>{body}</table>'


def _num(value: float | None, background: str = "") -> str:
    """A number cell in the house format (the exact value in ``data-value``), on ``background``."""
    style = ""
    if background:
        style = f" style='background:{background};color:{ink_on_css(background)}'"  # WCAG ≥ 4.5, as the page
    exact = "" if value is None else repr(float(value))
    return f"<td class='num' data-value='{exact}'{style}>{html.escape(fmt(value))}</td>"


def _quoted(text: str) -> str:
    """A token's text as the page quotes it (``JSON.stringify``): double quotes, JSON escapes."""
    return json.dumps(text, ensure_ascii=False)


def _value(value: Any) -> str:
    """A provenance value as HTML: a nested mapping as a small key/value table, a list as a
    comma-separated list, numbers in the house format, text as it is (never a Python repr)."""
    if isinstance(value, dict):
        rows = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{_value(v)}</td></tr>" for k, v in value.items())
        return f"<table class='kv'>{rows}</table>" if rows else "—"
    if isinstance(value, list | tuple):
        return ", ".join(_value(v) for v in value) if value else "—"
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return html.escape(fmt(value))
    return html.escape(str(value))


def _threshold(value: Any) -> str:
    return fmt(value) if isinstance(value, int | float) and not isinstance(value, bool) else str(value)


def report_html(data: dict[str, Any], language: str = "en") -> str:
    """The report page for ``data`` (from ``explain``), its words in ``language`` (``en``, ``zh-CN``)."""
    w = words(language)
    model = data["model"]
    spec, kind = html.escape(str(model.get("spec"))), html.escape(str(model.get("kind")))
    heading = w["model"].format(
        spec=spec,
        kind=kind,
        layers=model.get("layers"),
        heads=model.get("heads"),
        granularity=html.escape(data["granularity"]),
    )
    parts: list[str] = [
        f"<!doctype html><html lang='{language}'><head><meta charset='utf-8'>",
        f"<title>{w['title'].format(spec=html.escape(model.get('spec', '')))}</title>",
        f"<style>{_style()}</style></head><body>",
        f"<h1>{w['heading']}</h1>",
        f"<p>{heading}</p>",
        f"<p><b>{w['text']}</b></p><div class='units' data-testid='report-text'>{html.escape(data['text'])}</div>",
    ]
    if data.get("dp"):  # every number below that comes from the model's scores is noised: said first
        dp = data["dp"]
        line = w["dp"].format(
            line=html.escape(dp_line(data) or ""), releases=dp["rows_released"], epsilon=f"{dp['total_epsilon']:g}",
            composition=html.escape(dp["composition"]),
        )  # fmt: skip
        parts.append(f"<p class='note' data-testid='dp-label'>{line}</p>")
    if data.get("prediction"):
        rows = [
            [
                f"<td>{html.escape(_quoted(c['token']))}</td>",
                f"<td class='num'>{c['id']}</td>",
                f"<td class='num'>{fmt_prob(c['prob'])}</td>",
            ]
            for c in data["prediction"]
        ]
        parts += [f"<h2>{w['prediction']}</h2>", _table([w["token"], w["id"], w["probability"]], rows)]

    parts.append(f"<h2>{w['observations']}</h2><ul data-testid='observations'>")
    said = data["observations"]
    if language != "en":  # the JSON keeps the English sentences; the page words them again
        from attnscope.render.observations import observations

        said = observations(data, language)
    parts += [f"<li>{html.escape(line)}</li>" for line in said]
    parts.append("</ul>")
    threshold_rows = [
        [f"<td>{html.escape(threshold_name(language, k))}</td>", f"<td class='num'>{html.escape(_threshold(v))}</td>"]
        for k, v in data["thresholds"].items()
    ]
    parts += [f"<p class='note'>{w['thresholds']}</p>", _table([w["rule"], w["threshold"]], threshold_rows)]

    parts.append(f"<h2>{w['importance']}</h2>")
    parts.append(f"<p class='note'>{w['importance.note']}</p>")
    for method, body in data["methods"].items():
        extra = ""
        details = body.get("details") or {}
        if "delta" in details:
            extra = w["delta"].format(delta=fmt(details["delta"]), steps=details.get("steps"))
        seconds = data.get("seconds", {}).get(method)
        timing = w["seconds"].format(seconds=fmt(seconds)) if seconds is not None else ""
        parts.append(f"<h3>{html.escape(method)}{html.escape(extra)}{timing}</h3>")
        parts.append(_unit_view(data, method, w["score"]))
    for method, reason in data.get("skipped", {}).items():
        parts.append(
            f"<p class='note'>{w['skipped'].format(method=html.escape(method), reason=html.escape(reason))}</p>"
        )

    names = list(data["methods"])
    score_rows = []
    for index, unit in enumerate(data["units"]):
        cells = [f"<td>{html.escape(_quoted(unit['text']))}</td>"]
        cells += [_num(data["methods"][m]["scores"][index]) for m in names]
        score_rows.append(cells)
    parts += [f"<h2>{w['scores']}</h2>", _table([w["unit"], *names], score_rows, "scores")]

    agreement = data["agreement"]
    for statistic in ("spearman", "kendall"):
        rows = [
            [f"<th>{html.escape(a)}</th>"]
            + [
                _num(agreement[statistic][i][j], colour(agreement[statistic][i][j], 1.0))
                for j in range(len(agreement["methods"]))
            ]
            for i, a in enumerate(agreement["methods"])
        ]
        title = "Spearman ρ" if statistic == "spearman" else "Kendall τ-b"
        parts += [
            f"<h2>{w['agreement'].format(title=title)}</h2>",
            f"<p class='note'>{w['agreement.note']}</p>",
            _table(["", *agreement["methods"]], rows, "agreement"),
        ]

    heads = data["heads"]
    parts.append(f"<h2>{w['heads']}</h2><div class='grid'>")
    titles = heads.get("titles", {})
    for metric, values in heads["metrics"].items():
        title = metric_title(language, metric, titles.get(metric, metric))
        png = _heatmap_png(values, title, (w["head"], w["layer"]))
        parts.append(f"<img alt='{html.escape(metric)}' src='{png}'>")
    parts.append("</div>")
    if heads.get("note"):
        parts.append(f"<p class='note'>{html.escape(heads['note'])}</p>")
    legend = " ".join(
        f"<span class='chip' style='background:{background};color:{_ink_on(background)}'>{html.escape(label)}</span>"
        for label, background in label_colours().items()
    )
    label_rows = [
        [f"<th>L{layer}</th>"]
        + [
            f"<td title='L{layer} H{head}: {html.escape(label)}' style='background:{label_colour(label)}'></td>"
            for head, label in enumerate(row)
        ]
        for layer, row in enumerate(heads["labels"])
    ]
    parts += [
        f"<h3>{w['head_types']}</h3>",
        f"<p>{legend}</p>",
        _table(
            [""] + [f"H{h}" for h in range(len(heads["labels"][0]))] if heads["labels"] else [""], label_rows, "labels"
        ),
    ]

    parts.append(f"<h2>{w['provenance']}</h2>")
    provenance_rows = [
        [f"<td>{html.escape(str(k))}</td>", f"<td>{_value(v)}</td>"] for k, v in data["provenance"].items()
    ]
    parts.append(_table([w["field"], w["value"]], provenance_rows, "provenance"))
    payload = json.dumps(data, ensure_ascii=False).replace("</", "<\\/")
    parts.append(f"<script type='application/json' id='report-data'>{payload}</script></body></html>")
    return "".join(parts)
