"""What a method is: its options as data (:class:`Option`), its spec (:class:`MethodSpec`), and the
interface of the function that runs it (:class:`MethodInput` in, :class:`MethodOutput` out).

The registry of specs is :mod:`attnscope.methods.catalogue`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from attnscope.analysis.units import GRANULARITIES, Unit
from attnscope.capture.selection import parse_head, parse_layers
from attnscope.capture.tokens import Token
from attnscope.errors import InputError
from attnscope.progress import Progress

if TYPE_CHECKING:
    from attnscope.attribution.scorers import Scorer
    from attnscope.attribution.targets import Target
    from attnscope.capture.trace import Trace
    from attnscope.models.loaded import LoadedModel

Family = Literal["attention", "propagation", "gradient", "perturbation", "heads", "parts", "faithfulness"]
Need = Literal["trace", "model", "scorer"]
OptionKind = Literal["int", "float", "choice", "layers", "heads"]
OBJECTIVES = ("next-token", "continuation", "loss")  # what a target-explaining method can explain
KINDS = ("causal", "masked", "seq2seq")
NEEDS = ("trace", "model", "scorer")
FAMILIES: tuple[str, ...] = ("attention", "propagation", "gradient", "perturbation", "heads", "parts", "faithfulness")


@dataclass(frozen=True)
class Option:
    """One option of a method, described as data (the CLI flag ``--name`` and the JSON key ``name``)."""

    name: str
    kind: OptionKind
    default: Any
    help: str
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    auto: bool = False  # also accepts the word "auto" (the method then chooses)

    def parse(self, value: Any, method: str) -> Any:
        """``value`` checked and converted (from JSON or command-line text), or a one-line :class:`InputError`."""
        where = f"{method} option {self.name}"
        if self.auto and value == "auto":
            return "auto"
        if self.kind in ("layers", "heads"):
            if not isinstance(value, str | int | list) or isinstance(value, bool):
                raise InputError(f"{where} must be text such as {self.default!r}; got {value!r}")
            try:  # the form is checked here; the range needs the model (OutOfRangeError when it runs)
                parse_layers(value) if self.kind == "layers" else parse_head(value)
            except InputError as error:
                raise InputError(f"{where}: {error}") from None
            return value
        if self.kind == "choice":
            if value not in self.choices:
                raise InputError(f"{where} must be one of {', '.join(self.choices)}; got {value!r}")
            return value
        number = _number(value, integer=self.kind == "int")
        if number is None:
            kind = "an integer" if self.kind == "int" else "a finite number"
            extra = " or 'auto'" if self.auto else ""
            raise InputError(f"{where} must be {kind}{extra}; got {value!r}")
        if (self.minimum is not None and number < self.minimum) or (self.maximum is not None and number > self.maximum):
            raise InputError(f"{where} must be between {_show(self.minimum)} and {_show(self.maximum)}; got {number}")
        return number

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.kind,
            "default": self.default,
            "help": self.help,
            "choices": list(self.choices) or None,
            "minimum": self.minimum,
            "maximum": self.maximum,
            "auto": self.auto,
        }


def _number(value: Any, *, integer: bool) -> int | float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = int(value) if integer else float(value)
        except ValueError:
            return None
    if integer:
        return int(value) if isinstance(value, int) else None
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    return None


def _show(value: float | None) -> str:
    return "∞" if value is None else f"{value:g}"


@dataclass(frozen=True)
class MethodSpec:
    """What one method is, needs and accepts, and the function that runs it.

    ``run`` takes a :class:`MethodInput` and returns a :class:`MethodOutput`: token scores (or unit
    scores, for methods that measure units whole) and details. Methods with ``scores_tokens=False``
    (head metrics, parts, agreement) are listed for discovery and run through their own entry points.
    """

    name: str
    title: str  # what the web selector and reports call it
    family: Family
    description: str  # one line
    needs: tuple[Need, ...]  # "trace": a capture (from the model, or given); "model": the model itself;
    # "scorer": log-probabilities of continuations (the in-process model, a callable or an HTTP endpoint)
    options: tuple[Option, ...] = ()
    units: tuple[str, ...] = GRANULARITIES
    kinds: tuple[str, ...] = KINDS
    max_tokens: int | None = None  # a hard limit of the method itself (None: the model's context)
    scores_tokens: bool = True  # gives one score per unit: attribute, agreement, the token strip, reports
    explains_target: bool = False  # scores depend on a target (the predicted token or a given continuation)
    objectives: tuple[str, ...] = ()  # what it can explain (OBJECTIVES; the page's objective select lists them)
    signed: bool = False  # scores can be negative
    slow: bool = False  # runs the model many times: progress is reported and the job can be cancelled
    explains_steps: bool = False  # scores each step of a generation (generate --attribute, methods.steps)
    reference: str = ""
    run: Callable[..., Any] | None = field(default=None, compare=False)

    def option(self, name: str) -> Option:
        for option in self.options:
            if option.name == name:
                return option
        known = ", ".join(o.name for o in self.options) or "none"
        raise InputError(f"{name!r} is not an option of {self.name} (its options: {known})")

    def parse_options(self, given: Mapping[str, Any]) -> dict[str, Any]:
        """Every option of this method: given values checked, the rest at their defaults."""
        values = {option.name: option.default for option in self.options}
        for name, value in given.items():
            if value is None:
                continue
            values[name] = self.option(name).parse(value, self.name)
        return values

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "family": self.family,
            "description": self.description,
            "needs": list(self.needs),
            "options": [option.to_json() for option in self.options],
            "units": list(self.units),
            "kinds": list(self.kinds),
            "max_tokens": self.max_tokens,
            "scores_tokens": self.scores_tokens,
            "explains_target": self.explains_target,
            "objectives": list(self.objectives),
            "signed": self.signed,
            "slow": self.slow,
            "explains_steps": self.explains_steps,
            "reference": self.reference,
        }


@dataclass
class MethodInput:
    """Everything a method's ``run`` function may use; the trace is captured only when asked for."""

    spec: MethodSpec
    text: str
    model: LoadedModel | None
    tokens: list[Token] | None  # None for black-box scorers without a local tokenizer
    units: list[Unit]
    granularity: str
    query: int  # the token whose next-token prediction is explained
    options: dict[str, Any]
    target: Target | None
    scorer: Scorer | None
    progress: Progress | None
    backend: str = "auto"
    given_trace: Trace | None = None

    def trace(self) -> Trace:
        """The trace given to :func:`attribute`, or one capture of the text (made once)."""
        if self.given_trace is None:
            if self.model is None:
                raise InputError(f"{self.spec.name} needs a trace or the model to capture one")
            from attnscope.capture.engine import capture

            self.given_trace = capture(
                self.model,
                self.text,
                predict="last",
                backend=self.backend,  # type: ignore[arg-type]
                progress=self.progress,
            )
        return self.given_trace

    @property
    def prompt_end(self) -> int:
        """The character offset where the explained prediction begins (the end of the query token)."""
        return len(self.text) if self.tokens is None else prompt_end(self.tokens, self.query)


def prompt_end(tokens: list[Token], query: int) -> int:
    """The character offset after token ``query`` (or after the last token before it with characters)."""
    token = tokens[query]
    if token.end is not None:
        return token.end
    ends = [t.end for t in tokens[: query + 1] if t.end is not None]
    return max(ends) if ends else 0


@dataclass
class MethodOutput:
    token_scores: np.ndarray | None = None  # (tokens,) summed into units
    unit_scores: np.ndarray | None = None  # (units,) for methods that measure units whole
    details: dict[str, Any] = field(default_factory=dict)
