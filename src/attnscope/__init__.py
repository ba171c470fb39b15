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

import sys
import types
from importlib import import_module
from typing import TYPE_CHECKING, Any

from attnscope.version import __version__

_LAZY: dict[str, str] = {
    "load_model": "attnscope.models",
    "LoadedModel": "attnscope.models",
    "list_models": "attnscope.models",
    "capture": "attnscope.capture",
    "Trace": "attnscope.capture",
    "generate": "attnscope.keep",
    "GenerationTrace": "attnscope.capture",
    "Token": "attnscope.capture",
    "Predictions": "attnscope.capture",
    "attribute": "attnscope.keep",
    "methods": "attnscope.methods",
    "keep": "attnscope.keep",
    "to_bertviz": "attnscope.render.interop",
    "to_circuitsvis": "attnscope.render.interop",
    "to_inseq": "attnscope.render.inseq_export",
    "from_inseq": "attnscope.render.inseq_io",
}

__all__ = ["__version__", *sorted(_LAZY)]

if TYPE_CHECKING:  # pragma: no cover
    from attnscope.capture import GenerationTrace, Predictions, Token, Trace, capture, generate  # noqa: F401
    from attnscope.keep import keep  # noqa: F401
    from attnscope.methods import attribute, methods  # noqa: F401
    from attnscope.models import LoadedModel, list_models, load_model  # noqa: F401
    from attnscope.render.inseq_export import to_inseq  # noqa: F401
    from attnscope.render.inseq_io import from_inseq  # noqa: F401
    from attnscope.render.interop import to_bertviz, to_circuitsvis  # noqa: F401


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'attnscope' has no attribute {name!r}")
    if name == "capture":  # the subpackage, callable: capture(model, text, store=...)
        value = import_module("attnscope.keep").CaptureEntry()
        globals()[name] = value
        return value
    value = getattr(import_module(module_name), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


class _Package(types.ModuleType):
    """This package's module type. Importing a submodule sets the parent's attribute of its name:
    ``attnscope.capture`` would become the bare subpackage and ``attnscope.keep`` the module. They
    stay the entry points — the capture that also takes ``store=``, the function ``keep`` (``from
    attnscope.capture import ...`` reads the subpackage itself, as always)."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name in ("capture", "keep") and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
