"""Capture: one forward pass recorded into a ``Trace`` (tokens, predictions, lazy attention).

``attnscope.capture`` is this package and, called, the function :func:`engine.capture`, so both
``attnscope.capture(model, text)`` and ``from attnscope.capture import capture`` work. torch is
imported on the first capture, not before.
"""

import sys
import types
from typing import Any

from attnscope.capture.predictions import Candidate, Predictions
from attnscope.capture.tokens import Part, Token
from attnscope.capture.trace import BeamNode, GenerationTrace, Step, Trace

__all__ = [
    "AUTO_QK_MIN_TOKENS",
    "BeamNode",
    "Candidate",
    "GenerationTrace",
    "Part",
    "Predictions",
    "Step",
    "Token",
    "Trace",
    "capture",
    "generate",
]


def __getattr__(name: str) -> Any:
    if name in ("capture", "AUTO_QK_MIN_TOKENS"):
        from attnscope.capture import engine

        return getattr(engine, name)
    if name == "generate":
        from attnscope.capture.generation import generate

        return generate
    raise AttributeError(name)


class _CallableModule(types.ModuleType):
    def __call__(self, *args: Any, **kwargs: Any) -> Trace:
        from attnscope.capture.engine import capture

        return capture(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
