"""Compact binary arrays for the browser: ``[u32 header length][JSON header][payload]``.

The header says ``{"dtype": "float16" | "uint8", "shape": [...], "scale": s}``. float16 payloads are
the weights themselves; uint8 payloads are ``round(weight / scale * 255)`` (``scale`` = the array's
maximum), for heatmaps where 1/255 of the maximum is finer than a colour step. Little-endian.
"""

from __future__ import annotations

import json
import struct
from typing import Literal

import numpy as np

Encoding = Literal["float16", "uint8"]


def encode(array: np.ndarray, encoding: Encoding = "float16", **extra: object) -> bytes:
    values = np.asarray(array, dtype=np.float32)
    if encoding == "uint8":
        scale = float(values.max()) if values.size else 0.0
        payload = np.zeros(values.shape, dtype=np.uint8) if scale <= 0 else np.rint(values / scale * 255)
        body = payload.astype(np.uint8).tobytes()
    else:
        scale = 1.0
        body = values.astype("<f2").tobytes()
    header = json.dumps({"dtype": encoding, "shape": list(values.shape), "scale": scale, **extra}).encode()
    return struct.pack("<I", len(header)) + header + body


def decode(data: bytes) -> tuple[dict[str, object], np.ndarray]:
    """The inverse of :func:`encode` (used by tests and Python clients)."""
    (length,) = struct.unpack_from("<I", data)
    header = json.loads(data[4 : 4 + length])
    shape = tuple(int(n) for n in header["shape"])
    body = data[4 + length :]
    if header["dtype"] == "uint8":
        values = np.frombuffer(body, dtype=np.uint8).astype(np.float32) / 255 * float(header["scale"])
    else:
        values = np.frombuffer(body, dtype="<f2").astype(np.float32)
    return header, values.reshape(shape)
