"""Where captured queries and keys are kept while the forward pass runs: the stash policy.

- ``device``: the tensors the model made stay where they are, in the model's dtype (no copy at all:
  the forward never waits). Peak device memory is the plain forward's plus the stash.
- ``host``: on a GPU each layer's tensors are copied into pinned host memory on a side stream, so
  the copy overlaps the next layers; the capture waits for the copies once, at the end. On the CPU
  this is the same as ``device``.
- ``auto`` (default): ``device`` until the stash reaches a byte budget (by default half of the
  device memory free when the capture starts), ``host`` beyond it.
"""

from __future__ import annotations

from typing import Literal

import torch

from attnscope.capture.reads import STASH_POLICIES
from attnscope.errors import InputError
from attnscope.models.devices import auto_stash_budget

StashPolicy = Literal["device", "host", "auto"]


class Stash:
    """Keeps the tensors a capture records, by policy; :meth:`finish` before reading them."""

    def __init__(self, policy: str = "auto", budget_bytes: int | None = None, device: str | None = None) -> None:
        if policy not in STASH_POLICIES:
            raise InputError(f"unknown stash policy {policy!r}; use {', '.join(STASH_POLICIES)}")
        if budget_bytes is not None and budget_bytes < 0:
            raise InputError("the stash budget must be a number of bytes ≥ 0")
        self.policy = policy
        self.budget_bytes = budget_bytes
        if policy == "auto" and budget_bytes is None and device is not None:  # measured when the capture starts
            self.budget_bytes = auto_stash_budget(device)
        self.device_bytes = 0  # kept on the device so far
        self.host_bytes = 0  # offloaded so far
        self._offloading = False  # once a layer went to the host, the later ones follow
        self._stream: torch.cuda.Stream | None = None

    def keep(self, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """What to record for one layer's ``tensors`` (its query and key): the tensors themselves,
        or their pinned host copies under way — all of them in the same place."""
        tensors = tuple(_own_storage(t) for t in tensors)
        size = sum(t.numel() * t.element_size() for t in tensors)
        if tensors[0].device.type != "cuda" or not self._offload(tensors[0].device, size):
            self.device_bytes += size
            return tensors
        self.host_bytes += size
        return tuple(self._to_host(t) for t in tensors)

    def room(self, device: torch.device, size: int) -> bool:
        """Whether ``size`` more bytes may stay on ``device`` (room a generation reserves for its
        rows): always on the CPU and with policy ``device``; within the budget with ``auto``."""
        if device.type != "cuda" or self.policy == "device":
            return True
        if self.policy == "host" or self._offloading:
            return False
        if self.budget_bytes is None:
            self.budget_bytes = auto_stash_budget(device) or 0
        return self.device_bytes + size <= self.budget_bytes

    def add_device_bytes(self, size: int) -> None:
        """Count ``size`` more bytes kept on the device (buffers made for a generation's rows)."""
        self.device_bytes += size

    def _offload(self, device: torch.device, size: int) -> bool:
        if self.policy == "device":
            return False
        if self.policy == "host" or self._offloading:
            return True
        if self.budget_bytes is None:
            self.budget_bytes = auto_stash_budget(device) or 0
        self._offloading = self.device_bytes + size > self.budget_bytes
        return self._offloading

    def _to_host(self, tensor: torch.Tensor) -> torch.Tensor:
        if self._stream is None:
            self._stream = torch.cuda.Stream(device=tensor.device)
        pinned = torch.empty(tensor.shape, dtype=tensor.dtype, device="cpu", pin_memory=True)
        self._stream.wait_stream(torch.cuda.current_stream(tensor.device))  # the tensor is computed
        with torch.cuda.stream(self._stream):
            pinned.copy_(tensor, non_blocking=True)
        tensor.record_stream(self._stream)  # its memory is not reused before the copy is done
        return pinned

    def finish(self) -> None:
        """Wait for the copies under way (nothing to wait for unless something was offloaded)."""
        if self._stream is not None:
            self._stream.synchronize()

    def describe(self) -> dict[str, object]:
        return {
            "policy": self.policy,
            "budget_bytes": self.budget_bytes,
            "device_bytes": self.device_bytes,
            "host_bytes": self.host_bytes,
        }


def _own_storage(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` itself, or a compact copy when it is a view into a much larger buffer (fused QKV
    projections, e.g. GPT-2: keeping the view would keep the values too, unaccounted)."""
    if tensor.untyped_storage().nbytes() > 1.25 * tensor.numel() * tensor.element_size():
        return tensor.clone()
    return tensor
