"""The head metrics export: each metric as a layers × heads heatmap in the palette's sequential
colormap with its colour bar, and the head-type labels in their palette colours with a legend.
Drawn from a trace (:func:`attnscope.methods.heads.measure_heads` without a model: no induction
probe) or from a ``heads`` answer (what ``attnscope heads --json`` and ``POST /api/heads`` give,
induction included when it was measured). ``ExportOptions.metric`` picks one metric.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from attnscope.errors import InputError
from attnscope.render.exports.frame import (
    ExportOptions,
    Table,
    finish,
    matrix,
    meta_of,
    new_figure,
    provenance_line,
    require,
    sequential_colormap,
)
from attnscope.render.palette import label_colours

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from attnscope.capture.trace import Trace

ANSWER_KINDS = ("heads",)
EXACT_TOKENS = 2048  # longer inputs: metrics estimated from SAMPLED_ROWS evenly spaced query rows
SAMPLED_ROWS = 1024


def answer_of(data: Trace | Mapping[str, Any], options: ExportOptions) -> Mapping[str, Any]:
    """The heads answer: given, or measured on the trace (personal data plays no part: no text)."""
    if isinstance(data, Mapping):
        return data
    from attnscope.methods.heads import measure_heads
    from attnscope.render.json import heads_json

    name = data.stack_name(options.stack)
    n_query = len(data.query_tokens(name))
    if n_query <= EXACT_TOKENS:
        return heads_json(measure_heads(None, data, stack=name))
    from attnscope.analysis.heads import head_labels, head_metrics, metric_titles, metrics_json

    rows = np.unique(np.linspace(0, n_query - 1, SAMPLED_ROWS).round().astype(np.int64))
    metrics = head_metrics(data, stack=name, rows=rows)
    return {
        "result": "heads",
        "stack": name,
        "n_tokens": n_query,
        "metrics": metrics_json(metrics),
        "titles": metric_titles(0.01),
        "labels": head_labels(metrics, len(data.key_tokens(name))),
        "sampled_rows": len(rows),
        "model": data.model.to_dict(),
        "provenance": data.provenance,
    }


def _metrics(
    answer: Mapping[str, Any], options: ExportOptions
) -> tuple[dict[str, np.ndarray], dict[str, str], list[Any]]:
    metrics = require(answer, "metrics", Mapping, "head metrics")
    given = answer.get("titles")
    titles: Mapping[str, Any] = given if isinstance(given, Mapping) else {}
    try:
        arrays: dict[str, np.ndarray] = {
            str(name): np.array([[np.nan if v is None else float(v) for v in row] for row in values], dtype=float)
            for name, values in metrics.items()
        }
    except (TypeError, ValueError):
        raise InputError("the heads answer's metrics are not layers × heads numbers") from None
    if not arrays or any(a.ndim != 2 or a.shape != next(iter(arrays.values())).shape for a in arrays.values()):
        raise InputError("the heads answer's metrics are not layers × heads numbers")
    if options.metric is not None:
        if options.metric not in arrays:
            raise InputError(f"unknown metric {options.metric!r}; metrics: {', '.join(arrays)}")
        arrays = {options.metric: arrays[options.metric]}
    found = answer.get("labels")
    labels: list[Any] = found if isinstance(found, list) else []
    if labels and (len(labels) != len(next(iter(arrays.values()))) or not all(isinstance(row, list) for row in labels)):
        raise InputError("the heads answer's labels are not layers × heads names")
    return arrays, {name: str(titles.get(name, name)) for name in arrays}, labels


def figure(data: Trace | Mapping[str, Any], options: ExportOptions) -> Figure:
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    answer = answer_of(data, options)
    arrays, titles, labels = _metrics(answer, options)
    layers, heads = next(iter(arrays.values())).shape
    panels = len(arrays) + (1 if labels else 0)
    columns = min(3, panels)
    rows = -(-panels // columns)
    figure, grid = new_figure(max(8.0, 4.2 * columns), 1.2 + rows * (1.4 + 0.14 * layers), rows, columns, squeeze=False)
    cells = [axes for row in grid for axes in row]
    for axes, (name, values) in zip(cells, arrays.items(), strict=False):
        matrix(figure, axes, values, cmap=sequential_colormap(), bar_label=titles[name])
        axes.set_title(titles[name], fontsize=8)
    if labels:
        axes = cells[len(arrays)]
        colours = label_colours()
        names = list(colours)
        index = np.array(
            [[names.index(label) if label in names else len(names) - 1 for label in row] for row in labels]
        )
        axes.imshow(index, aspect="auto", cmap=ListedColormap(list(colours.values())), vmin=-0.5,
                    vmax=len(names) - 0.5, interpolation="nearest")  # fmt: skip
        axes.set_title("head type", fontsize=8)
        present = [name for name in names if any(name in row for row in labels)]
        axes.legend(handles=[Patch(facecolor=colours[n], edgecolor="#777777", label=n) for n in present], fontsize=6,
                    loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)  # fmt: skip
    from matplotlib.ticker import MaxNLocator

    for axes in cells[:panels]:
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.yaxis.set_major_locator(MaxNLocator(integer=True))
        axes.set_xlabel("head", fontsize=8)
        axes.set_ylabel("layer", fontsize=8)
        axes.tick_params(labelsize=6)
    for axes in cells[panels:]:
        axes.axis("off")
    words = (
        f"{answer.get('stack', 'decoder')} stack, {layers} layers × {heads} heads, {answer.get('n_tokens', '?')} tokens"
    )
    if answer.get("sampled_rows"):
        words += f" (estimated from {answer['sampled_rows']} evenly spaced query rows)"
    footer = provenance_line(answer.get("model"), answer.get("provenance"), words)
    return finish(figure, options.title or f"Head metrics — {words}", footer)


def table(data: Trace | Mapping[str, Any], options: ExportOptions) -> Table:
    answer = answer_of(data, options)
    arrays, _, labels = _metrics(answer, options)
    layers, heads = next(iter(arrays.values())).shape
    rows = [
        [layer, head, labels[layer][head] if labels else None, *(float(arrays[m][layer, head]) for m in arrays)]
        for layer in range(layers)
        for head in range(heads)
    ]
    words = f"{answer.get('stack', 'decoder')} stack, {layers} layers × {heads} heads"
    return Table(
        ["layer", "head", "label", *arrays],
        rows,
        meta_of("metrics", words, answer.get("model"), answer.get("provenance")),
    )
