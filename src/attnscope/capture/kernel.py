"""The attention score kernel: every read of a ``qk`` trace computes its weights here, and only here.

From a layer's post-rotary queries and keys (:class:`attnscope.capture.records.LayerRecord`) it
computes, batched over heads, on the device the stash is on, exactly what the model's attention
computed:

- scores ``q · k × scaling`` with the model's own scale (never assumed to be ``head_dim ** -0.5``),
  accumulated in float32 whatever the stash's dtype (bfloat16 and float16 inputs are widened
  exactly; float64 stays float64, for reference computations);
- grouped KV heads: query head ``h`` reads key head ``h // (heads / kv_heads)`` — without copying
  the keys when every head of a group is asked for;
- tanh soft-capping (Gemma 2), then an additive position bias (T5);
- the mask: causal and sliding-window rules, or the stored mask a rule could not explain;
- one softmax, which also gives each row's log-sum-exp (its normaliser), so that any block of a
  row can later be computed from its own cells: ``w = exp(score − lse)``.

Fully masked rows have weights 0 and a log-sum-exp of −inf. Everything is torch; the callers turn
results into numpy only at the edges (answers, files).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from attnscope.capture.reads import CHUNK_ELEMENTS
from attnscope.capture.records import LayerRecord

# On a GPU a read's chunks are this much larger (float32 elements, 512 MB): chunks of CHUNK_ELEMENTS
# left a GPU waiting on kernel launches (8 rows x 32k keys x 32 heads per chunk: the cold overview
# of one layer of an 8B model at 32k tokens took 4.6x its FLOP floor on an H200).
DEVICE_CHUNK_ELEMENTS = 128 * 1024 * 1024


def chunk_elements(device: torch.device | str) -> int:
    """Upper bound on the float32 scores a read holds at once on ``device``: CHUNK_ELEMENTS on a CPU
    (cache-sized); on a GPU DEVICE_CHUNK_ELEMENTS, within a sixteenth of the free memory (a read keeps
    about three buffers of this size: scores, padding, the mask)."""
    device = torch.device(device)
    if device.type != "cuda":
        return CHUNK_ELEMENTS
    free, _ = torch.cuda.mem_get_info(device)
    return max(CHUNK_ELEMENTS, min(DEVICE_CHUNK_ELEMENTS, free // 64))


def work_dtype(record: LayerRecord) -> torch.dtype:
    """float32 accumulation, or float64 for a float64 stash."""
    return torch.float64 if record.query.dtype == torch.float64 else torch.float32


def _positions(record: LayerRecord, query_rows: torch.Tensor) -> torch.Tensor:
    return record.positions_on(query_rows.device)[query_rows]


def rule_allowed(record: LayerRecord, query_rows: torch.Tensor, n_key: int, first_key: int = 0) -> torch.Tensor:
    """(rows, keys first_key..n_key-1) bool from the record's causal and sliding-window rule."""
    positions = _positions(record, query_rows)[:, None]
    keys = torch.arange(first_key, n_key, device=query_rows.device)[None, :]
    allowed = torch.ones((len(query_rows), n_key - first_key), dtype=torch.bool, device=query_rows.device)
    if record.causal:
        allowed &= keys <= positions
    if record.window is not None:
        allowed &= (positions - keys) < record.window
    return allowed


def allowed(
    record: LayerRecord, masks: list[torch.Tensor], query_rows: torch.Tensor, first: int, last: int
) -> torch.Tensor:
    """(rows, first..last-1) bool: where each query row may attend (one mask for every head)."""
    if record.mask_id is not None:
        mask = masks[record.mask_id]
        return mask[query_rows.to(mask.device), first:last].to(query_rows.device)
    return rule_allowed(record, query_rows, last, first)


def causal_end(record: LayerRecord, query_rows: torch.Tensor) -> int:
    """Keys past this index are masked for every row of ``query_rows`` (the whole key range when no
    rule says so): lets a causal row chunk skip the keys after its last position."""
    n_key = int(record.key.shape[1])
    if record.mask_id is None and record.causal and len(query_rows):
        return min(n_key, int(_positions(record, query_rows).max()) + 1)
    return n_key


@dataclass(frozen=True)
class Keys:
    """A record's keys for columns ``start..start+len-1``, in the work dtype on the query's device."""

    values: torch.Tensor  # (kv_heads, cols, head_dim)
    start: int = 0

    def columns(self, first: int, last: int) -> torch.Tensor:
        return self.values[:, first - self.start : last - self.start]


def work_keys(record: LayerRecord, first: int = 0, last: int | None = None) -> Keys:
    """The keys of columns ``first..last-1`` converted once for a read (a no-op view for float32
    keys already beside the queries): every row chunk of the read then uses them as they are."""
    last = int(record.key.shape[1]) if last is None else last
    values = record.key[:, first:last].to(device=record.device, dtype=work_dtype(record))
    return Keys(values, first)


def scores(
    record: LayerRecord,
    heads: list[int],
    query_rows: torch.Tensor,
    first: int,
    last: int,
    *,
    masks: list[torch.Tensor],
    biases: list[torch.Tensor],
    keys: Keys | None = None,
) -> torch.Tensor:
    """(heads, rows, first..last-1) pre-softmax scores in the work dtype; masked cells are −inf.
    ``query_rows`` is an int64 tensor on the stash's device; ``keys`` (from :func:`work_keys`,
    covering first..last-1) saves converting them again for every chunk of a read."""
    dtype = work_dtype(record)
    n_heads, n_kv = record.query.shape[0], record.key.shape[0]
    n_rep = n_heads // n_kv
    key = (keys or work_keys(record, first, last)).columns(first, last)  # (kv_heads, cols, head_dim)
    if list(heads) == list(range(n_heads)):
        # every head in order: each key head serves its group of query heads (no repeated keys)
        query = record.query[:, query_rows].to(dtype)  # (heads, rows, head_dim)
        grouped = query.reshape(n_kv, n_rep * len(query_rows), -1)
        values = torch.matmul(grouped, key.transpose(1, 2)).reshape(n_heads, len(query_rows), -1)
    else:
        head_ids = index(heads, record.device)
        query = record.query[head_ids[:, None], query_rows[None, :]].to(dtype)  # only the rows asked for
        values = torch.matmul(query, key[head_ids // n_rep].transpose(1, 2))
    values.mul_(record.scaling)  # in place from here on: one (heads, rows, cols) buffer per call
    if record.softcap is not None:
        values.div_(record.softcap).tanh_().mul_(record.softcap)
    if record.bias_id is not None:
        bias = biases[record.bias_id]
        picked = bias[index(heads, bias.device)[:, None], query_rows.to(bias.device)[None, :], first:last]
        values.add_(picked.to(values))
    mask = allowed(record, masks, query_rows, first, last)
    return values.masked_fill_(~mask[None], float("-inf"))


def softmax(values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Row softmax of (..., key) scores and each row's log-sum-exp; fully masked rows give 0 and −inf.
    The weights are computed in the scores' own buffer (``values`` is consumed)."""
    if not values.shape[-1]:
        return values, values.new_full(values.shape[:-1], float("-inf"))
    top = values.amax(dim=-1, keepdim=True)
    top = torch.where(torch.isfinite(top), top, torch.zeros_like(top))
    weights = values.sub_(top).exp_()
    total = weights.sum(dim=-1, keepdim=True)
    lse = torch.where(total > 0, top + torch.log(total), torch.full_like(total, float("-inf")))[..., 0]
    weights.div_(total.clamp_min(torch.finfo(total.dtype).tiny))  # an all-zero row stays zero
    return weights, lse


def weights_from_lse(values: torch.Tensor, lse: torch.Tensor) -> torch.Tensor:
    """Weights of a block of (..., rows, cols) scores from the rows' log-sum-exp (..., rows), computed
    in the scores' own buffer (``values`` is consumed); rows without keys (lse −inf) give 0."""
    norm = lse[..., None].to(values.dtype)
    norm = torch.where(torch.isfinite(norm), norm, torch.full_like(norm, float("inf")))
    return values.sub_(norm).exp_()


def index(values: np.ndarray | list[int] | range, device: torch.device) -> torch.Tensor:
    """An int64 index tensor on ``device``."""
    return torch.as_tensor(np.asarray(values, dtype=np.int64), device=device)
