"""attnscope: see what a transformer language model attends to and why it predicts what it predicts.

Typical use::

    import attnscope
    model = attnscope.load_model("smollm2-135m")
    trace = attnscope.capture(model, "The capital of France is")
    trace.attention(layer=-1, head="mean", rows=[-1])   # (1, tokens)
    trace.predictions.top(-1)                            # next-token candidates

Importing this package is cheap: torch and transformers load on first use of a model.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from attnscope.version import __version__

_LAZY: dict[str, str] = {
    "load_model": "attnscope.models",
    "LoadedModel": "attnscope.models",
    "list_models": "attnscope.models",
    "capture": "attnscope.capture",
    "Trace": "attnscope.capture",
    "generate": "attnscope.capture",
    "GenerationTrace": "attnscope.capture",
    "Token": "attnscope.capture",
    "Predictions": "attnscope.capture",
    "attribute": "attnscope.methods",
    "methods": "attnscope.methods",
    "keep": "attnscope.keep",
}

__all__ = ["__version__", *sorted(_LAZY)]

if TYPE_CHECKING:  # pragma: no cover
    from attnscope.capture import GenerationTrace, Predictions, Token, Trace, capture, generate  # noqa: F401
    from attnscope.keep import keep  # noqa: F401
    from attnscope.methods import attribute, methods  # noqa: F401
    from attnscope.models import LoadedModel, list_models, load_model  # noqa: F401


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'attnscope' has no attribute {name!r}")
    if name == "capture":  # the subpackage is itself callable: capture(model, text)
        return import_module(module_name)
    if name == "keep":  # the module attnscope.keep holds the function keep
        value = import_module(module_name).keep
        globals()[name] = value
        return value
    value = getattr(import_module(module_name), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
