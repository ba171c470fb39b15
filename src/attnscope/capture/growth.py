"""What a generation's steps add to each layer's record: one query row and one key row per step.

When the layer's first record (the prompt's) stayed on the model's device, its rows go into buffers
with room for more, each step writes its row into them, and a full buffer is replaced by one twice
as long (so a few large allocations in all, not thousands of small tensors: those fragment the CPU
heap — a 256-token generation kept 200 MB more than its stash — and no copy of the whole stash at
the end). Unused room is given back at the end. When the stash offloaded the layer (or the room
would pass its budget), each step's rows are kept as the stash places them and joined once at the end.
"""

from __future__ import annotations

import numpy as np
import torch

from attnscope.capture.records import LayerRecord
from attnscope.capture.stash import Stash
from attnscope.errors import UnsupportedError

FIRST_ROOM = 64  # rows of room the first buffer has after the prompt's


class LayerGrowth:
    def __init__(self, record: LayerRecord, capacity: int, stash: Stash, device: torch.device) -> None:
        self.stash = stash
        self.capacity = capacity  # rows the generation may add at most
        self.pieces: list[tuple[torch.Tensor, ...]] = []
        self.filled = [record.query.shape[1], record.key.shape[1]]  # rows of query and key so far
        self.added = 0
        self.first_rows = record.query.shape[1]
        self.record = record
        self.buffers: list[torch.Tensor] | None = None
        room = capacity * (record.query[:, :1].nbytes + record.key[:, :1].nbytes)
        if capacity > 0 and record.query.device == device and stash.room(device, room):
            self.buffers = [record.query, record.key]
            self._room(min(capacity, FIRST_ROOM))

    @property
    def rows(self) -> int:
        """Query rows so far: the prompt's and every step's."""
        return self.first_rows + self.added

    def _room(self, rows: int) -> None:
        """Buffers with ``rows`` rows of room after what they hold (the filled rows copied over)."""
        assert self.buffers is not None
        grown = []
        for buffer, filled in zip(self.buffers, self.filled, strict=True):
            bigger = buffer.new_empty((buffer.shape[0], filled + rows, buffer.shape[2]))
            bigger[:, :filled].copy_(buffer[:, :filled])
            grown.append(bigger)
        self.buffers = grown
        # the record points into the new buffers: the old ones (or the prompt's own tensors) are freed now
        self.record.query, self.record.key = (b[:, :f] for b, f in zip(grown, self.filled, strict=True))

    def add(self, query: torch.Tensor, key: torch.Tensor) -> None:
        """One step's new query rows (heads, n, d) and new key rows (kv_heads, n, d)."""
        n = query.shape[1]
        self.added += n
        if self.buffers is None or self.pieces:
            self.pieces.append(self.stash.keep(query, key))
            return
        if self.filled[0] + n > self.buffers[0].shape[1]:  # full: room for as many rows again as were added
            before = self.added - n
            self._room(max(n, min(max(before, FIRST_ROOM), self.capacity - before)))
        q_rows, k_rows = self.filled
        self.buffers[0][:, q_rows : q_rows + n].copy_(query)
        self.buffers[1][:, k_rows : k_rows + n].copy_(key)
        self.filled = [q_rows + n, k_rows + n]

    def finish(self, record: LayerRecord, where: tuple[str, int]) -> None:
        """Point ``record`` at every row (after :meth:`Stash.finish`)."""
        if record.mask_id is not None or record.bias_id is not None:
            raise UnsupportedError(
                f"generation recording needs a plain causal or sliding-window mask; {where[0]} layer {where[1]} "
                "had another"
            )
        if self.buffers is not None:
            query, key = (buffer[:, :filled] for buffer, filled in zip(self.buffers, self.filled, strict=True))
            if self.buffers[0].shape[1] > self.filled[0]:  # give the unused room back
                query, key = query.clone(), key.clone()
            record.query, record.key = query, key
            self.stash.add_device_bytes(self.added * (query[:, :1].nbytes + key[:, :1].nbytes))
            self.buffers = None
        if self.pieces:
            place = self.pieces[-1][0].device  # where the stash put the latest rows (offloading is sticky)
            record.query = torch.cat([record.query.to(place), *(q.to(place) for q, _ in self.pieces)], dim=1)
            record.key = torch.cat([record.key.to(place), *(k.to(place) for _, k in self.pieces)], dim=1)
        n_query, n_key = record.query.shape[1], record.key.shape[1]
        record.query_positions = np.arange(n_key - n_query, n_key, dtype=np.int64)
        record._positions.clear()
