"""Export of a generation's timeline (``POST /api/generate``, ``generate --json``): per step, the
generated token's probability, and what each step attended to.

Top: one bar per step, the probability of the token generated there (the prediction colour),
labelled by the token. Below: generated step × source token, each step's attention row (the query
before the step's position; keys 0 … p−1 in the decoder) on the page's attention scale (white 0 to
the attention colour at the largest weight shown), keys a step cannot see left blank; the
selection (layer, heads) is the answer's own, said in the title. The table has one row per (step,
source token) with the step's token and probability beside the weight.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from attnscope.errors import InputError
from attnscope.render.exports import fields
from attnscope.render.exports.frame import (
    ExportOptions,
    Table,
    attention_colormap,
    finish,
    matrix,
    new_figure,
    number_formatter,
    token_axis,
)
from attnscope.render.palette import hex_colour, palette, rgb

VIEW = "timeline"
TITLE = "generation timeline"
ANSWER_KINDS = ("generation",)


class Steps:
    """The steps of a generation answer, checked: tokens, probabilities, attention rows."""

    def __init__(self, answer: Mapping[str, Any]) -> None:
        answer = fields.expect(answer, ANSWER_KINDS, VIEW)
        prompt = fields.field(answer, "prompt", Mapping, VIEW)
        generated = fields.field(answer, "generated", Mapping, VIEW)
        self.prompt = fields.token_texts(prompt.get("tokens"), "prompt.tokens", VIEW)
        self.generated = fields.token_texts(generated.get("tokens"), "generated.tokens", VIEW)
        steps = fields.objects(fields.field(answer, "steps", list, VIEW), "steps", VIEW)
        if not steps:
            raise InputError(f"the {VIEW} answer has no steps")
        self.tokens: list[str] = []
        self.positions: list[int] = []
        self.probs: list[float] = []
        self.logprobs: list[float] = []
        self.rows: list[np.ndarray] = []
        self.label = ""
        for number, step in enumerate(steps):
            token = step.get("token")
            if not isinstance(token, Mapping) or not isinstance(token.get("text"), str):
                raise InputError(f"step {number} of the {VIEW} answer has no token text")
            attention = step.get("attention")
            if not isinstance(attention, Mapping):
                raise InputError(f"step {number} of the {VIEW} answer has no attention row")
            self.tokens.append(token["text"])
            self.positions.append(fields.index(step.get("position"), f"steps[{number}].position", VIEW))
            self.probs.append(fields.number(step.get("prob"), f"steps[{number}].prob", VIEW, null=True))
            self.logprobs.append(
                fields.number(step.get("logprob_cum"), f"steps[{number}].logprob_cum", VIEW, null=True)
            )
            self.rows.append(fields.numbers(attention.get("weights"), f"steps[{number}].attention.weights", VIEW))
            self.label = str(attention.get("label") or self.label)
        self.stack = str(steps[0]["attention"].get("stack") or "decoder")

    def key_labels(self, n_keys: int) -> list[str]:
        """The source tokens' texts: the prompt (an encoder's input for the cross stack), then the answer."""
        keys = self.prompt if self.stack == "cross" else self.prompt + self.generated
        if len(keys) < n_keys:
            raise InputError(f"the {VIEW} answer's attention rows are longer than its tokens")
        return keys[:n_keys]

    def grid(self, rows: list[np.ndarray]) -> np.ndarray:
        """(steps, keys) the rows padded with NaN (keys a step cannot see)."""
        n_keys = max((len(row) for row in rows), default=0)
        cells = np.full((len(rows), n_keys), np.nan)
        for step, row in enumerate(rows):
            cells[step, : len(row)] = row
        return cells


def figure(answer: Mapping[str, Any], options: ExportOptions) -> Any:
    """The steps' probabilities above the steps × source tokens attention map."""
    steps = Steps(answer)
    cells = steps.grid(steps.rows)  # (steps, keys)
    keys = steps.key_labels(cells.shape[1])
    fig, grid = new_figure(fields.width_for(len(keys), 0.2, 4.0), 3.2 + 0.22 * len(steps.tokens) + 1.6, 2, 1,
                           height_ratios=[1.0, max(1.4, 0.12 * len(steps.tokens))])  # fmt: skip
    bars, heat = grid[0, 0], grid[1, 0]
    bars.bar(range(len(steps.probs)), np.nan_to_num(steps.probs), color=hex_colour(rgb("prediction")), width=0.8)
    note = token_axis(bars, steps.tokens, "x")
    bars.set_xlabel(f"generated token, by step{note}")
    bars.set_ylabel("probability")
    bars.set_ylim(0, 1)
    bars.yaxis.set_major_formatter(number_formatter())
    bars.set_xlim(-0.6, len(steps.probs) - 0.4)
    bars.set_title("the probability of each generated token", fontsize=9)
    top = float(np.nanmax(cells)) if np.isfinite(cells).any() else 1.0
    cmap = attention_colormap().with_extremes(bad=palette()["ink"]["line"])  # keys a step cannot see
    matrix(fig, heat, cells, cmap=cmap, bar_label="attention weight", vmin=0, vmax=top or 1.0)
    key_note = token_axis(heat, keys, "x")
    step_note = token_axis(heat, steps.tokens, "y")
    heat.set_xlabel(f"source token{key_note}")
    heat.set_ylabel(f"generated token, step 0 at the top{step_note}")
    heat.set_title(f"what each step attended to: {steps.label}", fontsize=9)
    shown = f"{len(steps.tokens)} steps, {steps.label}"
    return finish(fig, fields.title(options, f"Generation timeline: {shown}"), fields.footer(answer, shown))


def table(answer: Mapping[str, Any], options: ExportOptions) -> Table:
    """One row per (step, source token): step, position, token, prob, cumulative log-probability,
    source position, source token, attention weight."""
    steps = Steps(answer)
    keys = steps.key_labels(max((len(row) for row in steps.rows), default=0))
    rows = [
        [
            step,
            steps.positions[step],
            steps.tokens[step],
            _cell(steps.probs[step]),
            _cell(steps.logprobs[step]),
            source,
            keys[source],
            float(weight),
        ]
        for step, row in enumerate(steps.rows)
        for source, weight in enumerate(row)
    ]
    columns = ["step", "position", "token", "prob", "logprob_cum", "source_position", "source_token", "attention"]
    return Table(columns, rows, fields.meta(VIEW, steps.label, answer))


def _cell(value: float) -> float | None:
    return None if np.isnan(value) else float(value)
