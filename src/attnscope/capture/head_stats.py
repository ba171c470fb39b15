"""Per-head row statistics of one layer, computed where the attention is (the stash's device).

The rows of every head stream through in chunks — (heads, chunk, key) weights in float64 on the
source's device — and only per-(head, row) values leave it: a 32k-token layer moves heads × N
numbers to the host, not heads × N × N. :func:`attnscope.analysis.heads.head_metrics` averages
them and labels the heads; the definitions are in its docstring.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from attnscope.capture.reads import AttentionSource


def weights_tensor(source: AttentionSource, stack: str, layer: int, heads: list[int], rows: np.ndarray) -> torch.Tensor:
    """(heads, rows, key) float64 weights on the source's device."""
    return source.rows_tensor(stack, layer, heads, rows).to(torch.float64)


def _row_values(weights: torch.Tensor, query_rows: torch.Tensor, threshold: float) -> dict[str, torch.Tensor]:
    """(heads, rows) values of every row; ``strongest`` is each row's argmax key."""
    n_key = weights.shape[-1]
    keys = torch.arange(n_key, device=weights.device)[None, :]
    positions = query_rows[:, None]
    attendable = (weights > 0).any(dim=0)  # (rows, key): keys some head reaches (masked keys are 0)
    distance = (positions - keys).abs().to(weights.dtype)  # (rows, key)
    safe = torch.where(weights > 0, weights, torch.ones_like(weights))
    below = ((weights < threshold) & attendable[None]).sum(dim=-1) / attendable.sum(dim=-1).clamp_min(1)[None]
    rows = torch.arange(len(query_rows), device=weights.device)
    previous = weights[:, rows, (query_rows - 1).clamp_min(0)]
    return {
        "entropy": -(weights * torch.log(safe)).sum(dim=-1),
        "sparsity": below.to(weights.dtype),
        "locality": (weights * distance[None]).sum(dim=-1),
        "sink": weights[:, :, 0],
        "previous_token": torch.where(query_rows[None] >= 1, previous, torch.zeros_like(previous)),
        "strongest": weights.argmax(dim=-1),
    }


def _focus(weights: torch.Tensor, query_rows: torch.Tensor, keys: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """(2, heads) summed weight of each head's rows on its modal key and on the key at its modal offset."""
    n_key = weights.shape[-1]
    heads = torch.arange(len(keys), device=weights.device)[:, None]
    rows = torch.arange(len(query_rows), device=weights.device)[None]
    absolute = weights[heads, rows, keys[:, None]]  # (heads, rows)
    relative = query_rows[None, :] - offsets[:, None]
    valid = (relative >= 0) & (relative < n_key)
    picked = weights[heads, rows, relative.clamp(0, n_key - 1)]
    return torch.stack([absolute.sum(dim=-1), torch.where(valid, picked, torch.zeros_like(picked)).sum(dim=-1)])


def _mode(values: np.ndarray) -> int:
    """The most common value (the smallest of equally common ones)."""
    found, counts = np.unique(values, return_counts=True)
    return int(found[counts.argmax()])


def layer_statistics(
    source: AttentionSource,
    stack: str,
    layer: int,
    heads: list[int],
    query_rows: np.ndarray,
    step: int,
    threshold: float,
) -> dict[str, Any]:
    """Sums over ``query_rows`` per head: ``entropy``, ``sparsity``, ``locality``, ``sink``,
    ``previous_token`` (with ``previous_count`` rows that have a previous token) and ``focus`` (2,
    heads): the weight on each head's modal key and on its modal offset. Two passes over the rows
    when they take more than one chunk of ``step`` rows (the modes need every row's argmax)."""
    chunks = [query_rows[begin : begin + step] for begin in range(0, len(query_rows), step)]
    sums: dict[str, torch.Tensor] = {}
    strongest = np.empty((len(heads), len(query_rows)), dtype=np.int64)
    kept: torch.Tensor | None = None
    for index, chunk in enumerate(chunks):
        weights = weights_tensor(source, stack, layer, heads, chunk)
        rows = torch.as_tensor(chunk, device=weights.device)
        values = _row_values(weights, rows, threshold)
        for name in ("entropy", "sparsity", "locality", "sink", "previous_token"):
            total = values[name].sum(dim=-1)
            sums[name] = total if name not in sums else sums[name] + total
        strongest[:, index * step : index * step + len(chunk)] = values["strongest"].cpu().numpy()
        kept = weights if len(chunks) == 1 else None
    modal_keys = np.array([_mode(s) for s in strongest])
    modal_offsets = np.array([_mode(query_rows - s) for s in strongest])
    focus: torch.Tensor | None = None
    for chunk in chunks:
        weights = kept if kept is not None else weights_tensor(source, stack, layer, heads, chunk)
        where = weights.device
        part = _focus(
            weights,
            torch.as_tensor(chunk, device=where),
            torch.as_tensor(modal_keys, device=where),
            torch.as_tensor(modal_offsets, device=where),
        )
        focus = part if focus is None else focus + part
    result: dict[str, Any] = {name: total.cpu().numpy() for name, total in sums.items()}
    result["previous_count"] = int((query_rows >= 1).sum())
    result["focus"] = np.zeros((2, len(heads))) if focus is None else focus.cpu().numpy()
    return result
