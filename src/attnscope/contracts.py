"""The JSON contracts' shared pieces: the schema version every result carries, and plain JSON values.

Every result (analysis, attribution, heads, parts, agreement, comparison, methods, models, report)
is one JSON object with ``"schema_version"`` and ``"result"`` (its kind); the CLI's ``--json`` and
the HTTP API give the same object for the same request. The builders live in
:mod:`attnscope.render.json`; this module sits at the bottom of the house so every layer can use it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

SCHEMA_VERSION = 1


def plain(value: Any) -> Any:
    """``value`` with numpy arrays and scalars turned into JSON values; NaN and ±inf become None."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return plain(value.tolist())
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(float(value)) else None
    return value
