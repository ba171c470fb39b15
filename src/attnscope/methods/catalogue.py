"""The method catalogue: one :class:`MethodSpec` per method, the only list of what attnscope can compute.

The CLI's choices and flags, the server's request validation and ``GET /api/methods``, the web
app's method selector, the agreement table, the report and the README's method table are all built
from it. A spec says what the method is (name, title, family, description, reference), what it
needs to run (a trace, the model, a scorer), its options as data (type, default, limits), which
units and model kinds it supports, how many tokens it accepts, and the function that runs it.

Adding a method is one module (the computation) plus one :func:`register` call. Packages can add
methods too: ``[project.entry-points."attnscope.methods"] name = "module:function"`` — the
function is called once, when the catalogue is first read, and registers its specs.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from importlib import metadata
from typing import Any

from attnscope.errors import InputError
from attnscope.methods.spec import FAMILIES, GRANULARITIES, KINDS, NEEDS, MethodSpec, Option

__all__ = [
    "FAMILIES",
    "GRANULARITIES",
    "KINDS",
    "MethodSpec",
    "Option",
    "get",
    "methods",
    "register",
    "shared_options",
    "unregister",
]


_CATALOGUE: dict[str, MethodSpec] = {}
_loaded = False


def register(spec: MethodSpec, *, replace: bool = False) -> MethodSpec:
    """Add ``spec`` to the catalogue (a name may be registered once unless ``replace``)."""
    if spec.family not in FAMILIES:
        raise ValueError(f"unknown method family {spec.family!r}; families: {', '.join(FAMILIES)}")
    if spec.scores_tokens and spec.run is None:
        raise ValueError(f"method {spec.name!r} scores tokens but has no run function")
    if not replace and spec.name in _CATALOGUE:
        raise ValueError(f"method {spec.name!r} is registered twice")
    names = [option.name for option in spec.options]
    if len(set(names)) != len(names):
        raise ValueError(f"method {spec.name!r} declares an option twice")
    for field, given, known in (
        ("units", spec.units, GRANULARITIES),
        ("kinds", spec.kinds, KINDS),
        ("needs", spec.needs, NEEDS),
    ):
        unknown = [value for value in given if value not in known]
        if unknown or not given:
            raise ValueError(f"method {spec.name!r}: {field} must be some of {', '.join(known)}; got {list(given)}")
    for option in spec.options:
        try:
            option.parse(option.default, spec.name)
        except InputError as error:
            raise ValueError(
                f"method {spec.name!r}: the default of option {option.name!r} is refused: {error}"
            ) from None
    _CATALOGUE[spec.name] = spec
    return spec


def unregister(name: str) -> None:
    """Remove a method (tests and plugins that register temporary methods)."""
    _CATALOGUE.pop(name, None)


def _load() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    from attnscope.methods.builtin import BUILTIN

    for spec in BUILTIN:
        register(spec)
    for entry in metadata.entry_points(group="attnscope.methods"):
        try:
            entry.load()()
        except Exception as error:  # a broken plugin must not break attnscope: say so and go on
            warnings.warn(
                f"attnscope method plugin {entry.name!r} failed to load: {error}", RuntimeWarning, stacklevel=2
            )


def methods(*, scores_tokens: bool | None = None) -> list[MethodSpec]:
    """Every registered method in catalogue order (optionally only those that score tokens, or not)."""
    _load()
    found = list(_CATALOGUE.values())
    return found if scores_tokens is None else [m for m in found if m.scores_tokens == scores_tokens]


def get(name: str) -> MethodSpec:
    """The spec of ``name``, or an :class:`InputError` listing the methods there are."""
    _load()
    spec = _CATALOGUE.get(name) if isinstance(name, str) else None
    if spec is None:
        raise InputError(f"unknown method {name!r}; methods: {', '.join(_CATALOGUE)}")
    return spec


def attribution_names() -> list[str]:
    """Names of the methods that give one score per unit (the choices of ``attnscope attribute``)."""
    return [m.name for m in methods(scores_tokens=True)]


def step_names() -> list[str]:
    """Names of the methods that can score each step of a generation (``generate --attribute``)."""
    return [m.name for m in methods() if m.explains_steps]


def shared_options(names: Sequence[str] | None, given: Mapping[str, Any]) -> dict[str, Any]:
    """Options given to several methods at once (agreement, report), checked before any of them runs:
    each must be an option of at least one of ``names`` (default: every attribution method), and its
    value must suit every method that has it. Returns the given values, converted (None: not given)."""
    specs = [get(name) for name in (names or attribution_names())]
    checked: dict[str, Any] = {}
    for key, value in given.items():
        if value is None:
            continue
        owners = [spec for spec in specs if any(option.name == key for option in spec.options)]
        if not owners:
            known = sorted({option.name for spec in specs for option in spec.options})
            raise InputError(
                f"{key!r} is not an option of {', '.join(spec.name for spec in specs)} "
                f"(their options: {', '.join(known) or 'none'})"
            )
        for spec in owners:
            checked[key] = spec.option(key).parse(value, spec.name)
    return checked


def catalogue_json() -> dict[str, Any]:
    """The ``attnscope methods --json`` / ``GET /api/methods`` contract."""
    from attnscope.contracts import SCHEMA_VERSION

    return {
        "schema_version": SCHEMA_VERSION,
        "result": "methods",
        "families": list(FAMILIES),
        "units": list(GRANULARITIES),
        "methods": [m.to_json() for m in methods()],
    }
