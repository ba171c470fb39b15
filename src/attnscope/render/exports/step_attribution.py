"""Export of a generation's step-attribution matrix (the ``attribution`` block of ``POST
/api/generate`` with ``attribute``, or ``POST /api/traces/{id}/attribute`` merged into the
generation): generated step × source token, each step's scores of the positions before it.

The matrix in the page's signed colours (red positive, teal negative, white 0; symmetric around 0
at the largest |score|), positions a step cannot see in the line grey, a colour bar with its scale;
rows are the generated tokens, columns the source tokens. The table: one row per (step, source
token) with the raw score.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from attnscope.errors import InputError
from attnscope.render.exports import fields
from attnscope.render.exports.frame import ExportOptions, Table, finish, matrix, new_figure, signed_colormap, token_axis
from attnscope.render.exports.timeline import Steps
from attnscope.render.palette import palette

VIEW = "step-attribution"
TITLE = "step attribution matrix"
ANSWER_KINDS = ("generation",)


def _read(answer: Mapping[str, Any]) -> tuple[Steps, str, list[np.ndarray]]:
    steps = Steps(answer)
    block = answer.get("attribution")
    if not isinstance(block, Mapping):
        raise InputError(f"the {VIEW} export needs a generation with its per-step attribution (attribute a method)")
    method = block.get("method")
    if not isinstance(method, str):
        raise InputError(f"attribution.method of the {VIEW} answer is not a method name")
    scores = fields.ragged(block.get("scores"), "attribution.scores", VIEW)
    positions = [fields.index(p, "attribution.positions", VIEW) for p in fields.field(block, "positions", list, VIEW)]
    if len(scores) != len(steps.tokens) or positions != steps.positions:
        raise InputError(f"attribution of the {VIEW} answer does not have one row per step of the generation")
    if any(len(row) != position for row, position in zip(scores, positions, strict=True)):
        raise InputError(f"attribution.scores of the {VIEW} answer: step s must score positions 0 … p_s − 1")
    return steps, method, scores


def figure(answer: Mapping[str, Any], options: ExportOptions) -> Any:
    """Generated step × source token, the method's signed scores."""
    steps, method, scores = _read(answer)
    cells = steps.grid(scores)  # (steps, keys)
    keys = steps.key_labels(cells.shape[1])
    fig, axes = new_figure(fields.width_for(len(keys), 0.2, 4.0), 2.6 + 0.24 * len(steps.tokens))
    bound = float(np.nanmax(np.abs(cells))) if np.isfinite(cells).any() else 1.0
    cmap = signed_colormap().with_extremes(bad=palette()["ink"]["line"])  # positions a step cannot see
    matrix(fig, axes, cells, cmap=cmap, bar_label=f"{method} score", vmin=-(bound or 1.0), vmax=bound or 1.0)
    key_note = token_axis(axes, keys, "x")
    step_note = token_axis(axes, steps.tokens, "y")
    axes.set_xlabel(f"source token{key_note}")
    axes.set_ylabel(f"generated token, step 0 at the top{step_note}")
    shown = f"{method} of each of {len(steps.tokens)} steps over the tokens before it"
    return finish(fig, fields.title(options, f"Step attribution: {shown}"), fields.footer(answer, shown))


def table(answer: Mapping[str, Any], options: ExportOptions) -> Table:
    """One row per (step, source position): step, position, token, method, source, source token, score."""
    steps, method, scores = _read(answer)
    keys = steps.key_labels(max((len(row) for row in scores), default=0))
    rows = [
        [step, steps.positions[step], steps.tokens[step], method, source, keys[source], float(score)]
        for step, row in enumerate(scores)
        for source, score in enumerate(row)
    ]
    columns = ["step", "position", "token", "method", "source_position", "source_token", "score"]
    return Table(columns, rows, fields.meta(VIEW, f"{method} per step", answer))
