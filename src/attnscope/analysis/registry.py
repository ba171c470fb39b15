"""A registry of analysis methods, so that the CLI, the server and notebooks discover them by name.

``attnscope methods`` lists what is registered. Methods are plain functions over a ``Trace`` (and
options) returning numpy arrays; registering does not import torch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from attnscope.errors import InputError


@dataclass(frozen=True)
class Method:
    name: str
    family: str  # "attention", "rollout", "heads", ...
    description: str  # one line
    function: Callable[..., Any]


_METHODS: dict[str, Method] = {}


def register(name: str, family: str, description: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def decorate(function: Callable[..., Any]) -> Callable[..., Any]:
        if name in _METHODS:
            raise ValueError(f"analysis method {name!r} is registered twice")
        _METHODS[name] = Method(name, family, description, function)
        return function

    return decorate


def _load_builtin() -> None:
    from attnscope.analysis import (  # noqa: F401  (registers on import)
        aggregate,
        faithfulness,
        flow,
        gradients,
        heads,
        occlusion,
        parts,
        rollout,
    )


def list_methods() -> list[Method]:
    _load_builtin()
    return sorted(_METHODS.values(), key=lambda m: (m.family, m.name))


def get_method(name: str) -> Method:
    _load_builtin()
    if name not in _METHODS:
        raise InputError(f"unknown analysis method {name!r}; available: {', '.join(sorted(_METHODS))}")
    return _METHODS[name]
