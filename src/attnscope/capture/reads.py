"""What every attention source answers (torch-free: a ``Trace``, the CLI and ``analysis`` import it).

The sources themselves (:mod:`.sources`) compute with torch; this module names their interface,
the capture backends, the reductions over heads and the working-set bound of a read.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, Protocol

import numpy as np

if TYPE_CHECKING:
    import torch

# How a capture records attention: the eager maps, queries and keys, or the choice by length.
BACKENDS = ("auto", "full", "qk")
STASH_POLICIES: tuple[str, ...] = ("device", "host", "auto")  # see capture.stash
# Upper bound on the float32 scores held at once while recomputing rows (elements).
CHUNK_ELEMENTS = 8 * 1024 * 1024
# How the heads of a read are combined: kept apart (None), or their mean or maximum.
Reduce = Literal["mean", "max"] | None


class AttentionSource(Protocol):
    name: str

    def stacks(self) -> list[str]: ...

    def layers(self, stack: str) -> list[int]: ...

    def num_heads(self, stack: str) -> int: ...

    def shape(self, stack: str) -> tuple[int, int]: ...

    def rows(
        self, stack: str, layer: int, heads: list[int], query_rows: np.ndarray, reduce: Reduce = None
    ) -> np.ndarray: ...

    def rows_tensor(
        self, stack: str, layer: int, heads: list[int], query_rows: np.ndarray, reduce: Reduce = None
    ) -> torch.Tensor:  # the same on the source's device, for reads that stay there (head statistics)
        ...

    def block(
        self, stack: str, layer: int, heads: list[int], rows: slice, cols: slice, reduce: Reduce = None, pool: int = 1
    ) -> np.ndarray: ...

    def arrays(self) -> dict[str, np.ndarray]: ...

    def meta(self) -> dict[str, Any]: ...
