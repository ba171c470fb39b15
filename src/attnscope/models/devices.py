"""Devices and dtypes: what ``auto`` means on this machine, and what ``attnscope doctor`` reports.

- device ``auto``: the first CUDA GPU, else Apple's MPS, else the CPU; ``cpu``, ``cuda``,
  ``cuda:N`` and ``mps`` are checked against what this machine has.
- dtype ``auto`` (or None): float32 on the CPU; bfloat16 on a GPU that supports it, else float16.
"""

from __future__ import annotations

import os
import platform
import re
from typing import Any

from attnscope.errors import InputError

DTYPES = {
    "float32": "float32",
    "fp32": "float32",
    "float": "float32",
    "float16": "float16",
    "fp16": "float16",
    "half": "float16",
    "bfloat16": "bfloat16",
    "bf16": "bfloat16",
}
DTYPE_CHOICES = ("auto", "float32", "bfloat16", "float16")
# A capture's ``auto`` stash keeps this fraction of the device memory free when it starts.
AUTO_BUDGET_FRACTION = 0.5
_DEVICE = re.compile(r"auto|cpu|mps|cuda(?::(\d+))?")


def resolve_device(device: str | None = "auto") -> str:
    """A device this machine has: ``cpu``, ``cuda``/``cuda:N`` or ``mps``; :class:`InputError` otherwise."""
    import torch

    name = (device or "auto").strip().lower()
    form = _DEVICE.fullmatch(name)
    if form is None:
        raise InputError(f"device {device!r} is unknown: use auto, cpu, cuda, cuda:N or mps")
    mps = getattr(torch.backends, "mps", None)
    has_mps = bool(mps is not None and mps.is_available())
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "mps" if has_mps else "cpu"
    if name == "mps" and not has_mps:
        raise InputError("device mps: MPS is not available on this machine")
    if name.startswith("cuda"):
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise InputError(f"device {name}: CUDA is not available on this machine")
        if int(form[1] or 0) >= count:
            raise InputError(f"device {name}: this machine has {count} CUDA device(s), cuda:0 to cuda:{count - 1}")
    return name


def resolve_dtype(dtype: str | None, device: str) -> str:
    """``float32``, ``float16`` or ``bfloat16`` for ``dtype`` on ``device`` (a resolved device)."""
    import torch

    if dtype is None or str(dtype).strip().lower() == "auto":
        if device == "cpu":
            return "float32"
        if device.startswith("cuda"):  # bf16 from compute capability 8.0 (Ampere) on, on that device
            return "bfloat16" if torch.cuda.get_device_capability(torch.device(device))[0] >= 8 else "float16"
        return "float16"
    name = DTYPES.get(str(dtype).strip().lower().removeprefix("torch."))
    if name is None:
        raise InputError(f"unknown dtype {dtype!r}; use auto, float32, bfloat16 or float16")
    return name


def device_free_bytes(device: Any) -> int | None:
    """Memory a CUDA device can still give torch, in bytes: free memory plus what torch has reserved
    but not allocated (None for the CPU and other devices)."""
    import torch

    where = torch.device(device)
    if where.type != "cuda":
        return None
    free, _total = torch.cuda.mem_get_info(where)
    return int(free + torch.cuda.memory_reserved(where) - torch.cuda.memory_allocated(where))


def auto_stash_budget(device: Any) -> int | None:
    """Bytes an ``auto`` stash may keep on ``device``: a share of what torch can still use there
    (None off CUDA: nothing is offloaded from the CPU)."""
    free = device_free_bytes(device)
    return None if free is None else int(free * AUTO_BUDGET_FRACTION)


def _host_memory() -> dict[str, int | None]:
    found: dict[str, int | None] = {"total_bytes": None, "available_bytes": None}
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            fields = dict(line.split(":", 1) for line in handle if ":" in line)
        found["total_bytes"] = int(fields["MemTotal"].split()[0]) * 1024
        found["available_bytes"] = int(fields["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        pass
    return found


def describe_machine(device: str | None = "auto", dtype: str | None = "auto") -> dict[str, Any]:
    """What a capture would use here: the resolved device and dtype, the accelerator and its memory,
    the host's memory and threads, the stash policy's device budget, and the library versions."""
    import torch
    import transformers

    from attnscope.version import __version__

    chosen = resolve_device(device)
    accelerator: dict[str, Any] | None = None
    budget: int | None = None
    if chosen.startswith("cuda"):
        index = torch.device(chosen).index or 0
        properties = torch.cuda.get_device_properties(index)
        free = device_free_bytes(chosen)
        accelerator = {
            "name": properties.name,
            "total_bytes": int(properties.total_memory),
            "free_bytes": free,
            "capability": f"{properties.major}.{properties.minor}",
            "bf16": bool(torch.cuda.is_bf16_supported()),
        }
        budget = auto_stash_budget(chosen)
    elif chosen == "mps":
        accelerator = {"name": "Apple MPS"}
    return {
        "device": chosen,
        "dtype": resolve_dtype(dtype, chosen),
        "accelerator": accelerator,
        "cuda_devices": torch.cuda.device_count() if torch.cuda.is_available() else 0,
        "host": {
            **_host_memory(),
            "cpu": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
        },
        "stash": {
            "policy": "auto",
            "device_budget_bytes": budget,
            "note": "queries and keys stay on the device, in the model's dtype"
            + ("" if budget is None else f", up to {AUTO_BUDGET_FRACTION:.0%} of the free device memory"),
        },
        "versions": {
            "attnscope": __version__,
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "python": platform.python_version(),
            "cuda": torch.version.cuda,
        },
    }
