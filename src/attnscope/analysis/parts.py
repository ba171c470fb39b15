"""Prompt-part analysis: how much attention a query region pays to each named part of the prompt.

Parts are character spans with names — given by the user, or the chat template's turns that
``capture(messages=...)`` records (``trace.parts``). A key token belongs to a part when its
characters overlap the part's span; keys in no part (template markers, inserted specials) form
``(other)``. For every layer and head: the attention mass from the query rows to each part, summed
over the part's keys and averaged over the query rows. Each (layer, head) row sums to 1.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from attnscope.capture.selection import RowSelector
from attnscope.capture.tokens import Part
from attnscope.capture.trace import Trace
from attnscope.errors import InputError, OutOfRangeError

OTHER = "(other)"


def part_tokens(trace: Trace, parts: Sequence[Part], stack: str | None = None) -> np.ndarray:
    """(parts + 1, keys) 0/1 membership; the last row is ``(other)``."""
    keys = trace.key_tokens(stack)
    member = np.zeros((len(parts) + 1, len(keys)), dtype=np.float64)
    for column, token in enumerate(keys):
        inside = False
        if token.start is not None and token.end is not None:
            for row, part in enumerate(parts):
                if token.start < part.end and part.start < max(token.end, token.start + 1):
                    member[row, column] = 1.0
                    inside = True
                    break
        if not inside:
            member[-1, column] = 1.0
    return member


def query_rows_of(
    trace: Trace, query: RowSelector | str, parts: Sequence[Part], stack: str | None = None
) -> np.ndarray:
    """Query rows: positions, or the name of a part (its tokens), default the last token."""
    if isinstance(query, str):
        named = [p for p in parts if p.name == query]
        if not named:
            raise InputError(f"no part named {query!r}; parts: {[p.name for p in parts]}")
        membership = part_tokens(trace, named, stack)[0]
        rows = np.flatnonzero(membership[: len(trace.query_tokens(stack))])
        if rows.size == 0:
            raise InputError(f"part {query!r} covers no tokens")
        return rows
    return trace.resolve_rows(-1 if query is None else query, stack)


def part_attention(
    trace: Trace,
    parts: Sequence[Part] | None = None,
    *,
    query: RowSelector | str = None,
    stack: str | None = None,
) -> tuple[list[str], np.ndarray]:
    """``(names, (layers, heads, parts + 1) mass)``; layers not captured are NaN."""
    chosen = list(parts if parts is not None else trace.parts)
    if not chosen:
        raise InputError("no parts: pass named spans, or capture chat messages (their turns become parts)")
    names = [part.name for part in chosen]
    if len(set(names)) != len(names):
        raise InputError(f"part names must be distinct; got {names}")
    for part in chosen:
        if part.end <= part.start:
            raise InputError(f"part {part.name!r} [{part.start}, {part.end}) is empty: its end must follow its start")
        if not 0 <= part.start < part.end <= len(trace.text):
            raise OutOfRangeError(
                f"part {part.name!r} [{part.start}, {part.end}) is outside the text (0..{len(trace.text)})"
            )
    name = trace.stack_name(stack)
    member = part_tokens(trace, chosen, name)  # (parts + 1, keys)
    rows = query_rows_of(trace, query, chosen, name)
    mass = np.full((trace.num_layers(name), trace.num_heads(name), len(chosen) + 1), np.nan)
    for layer in trace.captured_layers(name):
        weights = trace.attention(layer, None, rows=rows, stack=name).astype(np.float64)  # (heads, rows, keys)
        mass[layer] = (weights @ member.T).mean(axis=1)
    return [p.name for p in chosen] + [OTHER], mass
