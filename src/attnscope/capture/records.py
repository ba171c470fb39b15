"""What the ``qk`` source keeps per attention layer, the stash; :mod:`.kernel` computes weights from it.

Queries and keys stay where the forward pass made them — on the model's device, in the model's
dtype — unless a stash policy (:mod:`.stash`) moved them to the host. Arrays given as numpy (a
loaded trace file, hand-made records in tests) become CPU tensors. torch is imported when used.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch


def as_tensor(value: Any) -> torch.Tensor:
    """A tensor view of ``value`` (numpy arrays are shared, not copied, when writable)."""
    import torch

    if isinstance(value, torch.Tensor):
        return value
    array = np.asarray(value)
    if not array.flags.writeable:
        array = array.copy()
    return torch.from_numpy(array)


@dataclass
class LayerRecord:
    """What one attention call left behind for one (stack, layer); tensors for batch item 0."""

    query: torch.Tensor  # (heads, query, head_dim), post-rotary, the model's dtype and device
    key: torch.Tensor  # (kv_heads, key, head_dim), post-rotary, the model's dtype and device
    query_positions: np.ndarray  # (query,) int64: absolute position of each query row
    scaling: float
    softcap: float | None
    causal: bool
    window: int | None
    mask_id: int | None = None  # index into QKRecorder.masks when the rule does not explain the mask
    bias_id: int | None = None  # index into QKRecorder.biases (additive position bias, e.g. T5)
    _positions: dict[torch.device, torch.Tensor] = field(default_factory=dict, repr=False, compare=False)

    def positions_on(self, device: torch.device) -> torch.Tensor:
        """``query_positions`` as an int64 tensor on ``device`` (made once per device)."""
        import torch

        found = self._positions.get(device)
        if found is None or len(found) != len(self.query_positions):
            found = self._positions[device] = torch.as_tensor(self.query_positions, device=device)
        return found

    def __post_init__(self) -> None:
        self.query = as_tensor(self.query)
        self.key = as_tensor(self.key)
        self.query_positions = np.asarray(self.query_positions, dtype=np.int64)

    @property
    def device(self) -> torch.device:
        return self.query.device

    @property
    def stash_bytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (self.query, self.key))


def to_numpy(tensor: torch.Tensor) -> np.ndarray:
    """A CPU numpy copy for files and answers; bfloat16 (which numpy lacks) widens exactly to float32."""
    import torch

    value = tensor.detach()
    if value.dtype == torch.bfloat16:
        value = value.to(torch.float32)
    return np.ascontiguousarray(value.cpu().numpy())
