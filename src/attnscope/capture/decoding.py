"""The decoding settings of :func:`attnscope.capture.generation.generate`, checked in one place (the
library, the CLI and the HTTP API refuse the same values with the same one-line messages)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

import numpy as np

from attnscope.errors import InputError

if TYPE_CHECKING:
    from attnscope.models.loaded import LoadedModel

MAX_NEW_TOKENS = 8192
MAX_BEAMS = 16
MAX_STOPS = 16


@dataclass(frozen=True)
class Settings:
    """What ``generate`` was asked for, checked."""

    max_new_tokens: int
    do_sample: bool
    temperature: float | None
    top_p: float | None
    top_k: int | None
    seed: int | None
    num_beams: int
    stop: tuple[str, ...]

    def generate_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of ``model.generate`` these settings mean (the model's own
        generation config supplies the rest, as when ``model.generate`` is called directly)."""
        given = {"temperature": self.temperature, "top_p": self.top_p, "top_k": self.top_k}
        return {
            "max_new_tokens": self.max_new_tokens,
            "do_sample": self.do_sample,
            "num_beams": self.num_beams,
            **{name: value for name, value in given.items() if value is not None},
        }

    def to_dict(self) -> dict[str, Any]:
        return {field.name: getattr(self, field.name) for field in fields(self)} | {"stop": list(self.stop)}


def check_settings(
    max_new_tokens: Any,
    do_sample: Any,
    temperature: Any,
    top_p: Any,
    top_k: Any,
    seed: Any,
    num_beams: Any,
    stop: Any,
    names: Mapping[str, str] | None = None,
) -> Settings:
    """The settings, or a one-line :class:`InputError` naming the first bad one — by its argument
    name, or as ``names`` calls it (the CLI's flags, the API's fields)."""
    called = dict(names or {})

    def n(name: str) -> str:
        return called.get(name, name)

    if not isinstance(do_sample, bool):
        raise InputError(f"{n('do_sample')} must be true or false, not {do_sample!r}")
    whole = {"max_new_tokens": (max_new_tokens, 1, MAX_NEW_TOKENS), "num_beams": (num_beams, 1, MAX_BEAMS)}
    for name, (value, low, high) in whole.items():
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or not low <= value <= high:
            raise InputError(f"{n(name)} must be a whole number from {low} to {high}, not {value!r}")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int | np.integer) or top_k < 1):
        raise InputError(f"{n('top_k')} must be a whole number ≥ 1, not {top_k!r}")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int | np.integer) or not 0 <= seed < 2**63):
        raise InputError(f"{n('seed')} must be a whole number from 0 to 2^63 - 1, not {seed!r}")
    if temperature is not None and not _finite(temperature, low=0.0, low_open=True):
        raise InputError(f"{n('temperature')} must be a number > 0, not {temperature!r}")
    if top_p is not None and not (_finite(top_p, low=0.0, low_open=True) and float(top_p) <= 1.0):
        raise InputError(f"{n('top_p')} must be a number in (0, 1], not {top_p!r}")
    if not do_sample and (temperature is not None or top_p is not None or top_k is not None):
        raise InputError(
            f"{n('temperature')}, {n('top_p')} and {n('top_k')} are for sampling: pass {n('do_sample')} "
            "(or leave them out)"
        )
    stops = _check_stops(stop, n("stop"))
    return Settings(
        int(max_new_tokens),
        do_sample,
        None if temperature is None else float(temperature),
        None if top_p is None else float(top_p),
        None if top_k is None else int(top_k),
        None if seed is None else int(seed),
        int(num_beams),
        stops,
    )


def _finite(value: Any, *, low: float, low_open: bool) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        return False
    number = float(value)
    return math.isfinite(number) and (number > low if low_open else number >= low)


def _check_stops(stop: Any, name: str) -> tuple[str, ...]:
    if stop is None:
        return ()
    if isinstance(stop, str) or not isinstance(stop, Sequence):
        raise InputError(f"{name} must be a list of strings")
    if len(stop) > MAX_STOPS:
        raise InputError(f"at most {MAX_STOPS} {name} strings, not {len(stop)}")
    for item in stop:
        if not isinstance(item, str) or not item:
            raise InputError(f"each {name} string must be a non-empty string, not {item!r}")
        if len(item) > 200:
            raise InputError(f"a {name} string is {len(item)} characters; the limit is 200")
    return tuple(stop)


def stop_kwargs(model: LoadedModel, settings: Settings) -> dict[str, Any]:
    """``model.generate``'s arguments for the stop strings (none without)."""
    return {"stop_strings": list(settings.stop), "tokenizer": model.tokenizer} if settings.stop else {}


def eos_ids(model: LoadedModel) -> set[int]:
    """The token ids that end a generation (the model's generation config)."""
    eos = model.model.generation_config.eos_token_id
    if eos is None:
        return set()
    return {int(e) for e in (eos if isinstance(eos, list | tuple) else [eos])}


def stop_reason(model: LoadedModel, settings: Settings, new_ids: list[int], generated: str) -> str:
    """Why the generation ended: ``eos``, ``stop`` (a stop string) or ``length``."""
    if new_ids and new_ids[-1] in eos_ids(model):
        return "eos"
    if any(stop in generated for stop in settings.stop):
        return "stop"
    return "length"
