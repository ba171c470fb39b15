"""Methods: the catalogue (one :class:`MethodSpec` per method) and the functions that run them.

- :mod:`.catalogue` — the specs; ``attnscope methods`` and ``GET /api/methods`` list them;
- :mod:`.run` — :func:`attribute`: one score per unit by any token attribution method;
- :mod:`.agreement` — every method on one text and their rank agreement;
- :mod:`.heads` — head metrics with the induction probe;
- :mod:`.report` — everything together, for ``attnscope report``.
"""

from __future__ import annotations

from typing import Any

from attnscope.methods.catalogue import get, methods, register, unregister
from attnscope.methods.spec import MethodInput, MethodOutput, MethodSpec, Option

__all__ = [
    "Attribution",
    "MethodInput",
    "MethodOutput",
    "MethodSpec",
    "Option",
    "attribute",
    "get",
    "methods",
    "register",
    "unregister",
]


def __getattr__(name: str) -> Any:
    if name in ("attribute", "Attribution"):
        from attnscope.methods import run

        return getattr(run, name)
    raise AttributeError(name)
