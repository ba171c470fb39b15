"""The rule file's vocabulary as data: selectors, rules, rule sets and the problems a file can have.

:mod:`.rule_file` reads them from YAML or JSON; :mod:`.rules` evaluates them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from attnscope.capture.selection import LayerSelector

KINDS = ("text", "regex", "part", "role", "answer", "steps", "class", "lexicon")
CLASSES = ("first", "special", "pii", "numbers", "punctuation")
OCCURRENCE_KINDS = ("text", "regex", "part", "role", "lexicon")  # kinds that can match several spans
CASE_KINDS = ("text", "regex", "lexicon")
SEVERITIES = ("info", "warning", "critical")


@dataclass(frozen=True)
class Selector:
    """Which tokens a rule reads from or looks at: one ``kind`` (:data:`KINDS`) and its value."""

    kind: str
    value: Any  # str; (first, last) for steps; True for answer
    occurrence: str = "all"  # first | last | all matches (text, regex, part, role, lexicon)
    ignore_case: bool = False  # text, regex, lexicon

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {self.kind: list(self.value) if self.kind == "steps" else self.value}
        if self.occurrence != "all":
            data["occurrence"] = self.occurrence
        if self.ignore_case:
            data["ignore_case"] = True
        return data

    def describe(self) -> str:
        if self.kind == "answer":
            text = "the answer"
        elif self.kind == "steps":
            text = f"steps {self.value[0]}..{self.value[1]}"
        elif self.kind == "class":
            text = f"class {self.value}"
        else:
            text = f"{self.kind} {json.dumps(self.value, ensure_ascii=False)}"
        return text + (f" ({self.occurrence})" if self.occurrence != "all" else "")


@dataclass(frozen=True)
class Rule:
    """One rule: ``measure`` of attention from ``source`` to ``target``, compared with ``threshold``."""

    name: str
    source: Selector  # the file's "from": the query rows
    target: Selector | None  # the file's "to": the keys (None: entropy, which reads the whole row)
    measure: str  # mass | max | rank | entropy | attribution
    comparison: str  # >= | <= | > | <
    threshold: float
    layers: LayerSelector = "all"
    heads: list[int] | None = None  # None: every head
    aggregation: str = "mean"  # over the (layer, head) cells: mean | max | min | sum
    severity: str = "warning"
    description: str = ""
    method: str | None = None  # measure attribution: the catalogue's method
    options: dict[str, Any] = field(default_factory=dict)  # that method's options
    line: int | None = None  # where the rule starts in its file

    def passes(self, value: float) -> bool:
        if self.comparison == ">=":
            return value >= self.threshold
        if self.comparison == "<=":
            return value <= self.threshold
        return value > self.threshold if self.comparison == ">" else value < self.threshold

    @property
    def wants_high(self) -> bool:
        """A rule asking for a value at least (``>=``, ``>``): its worst cell is the lowest one."""
        return self.comparison in (">=", ">")

    @property
    def should_attend(self) -> bool:
        """A rule saying that ``source`` should attend to ``target`` (mass, max or an attribution
        share at least …, or a rank at most …): a failure offers a counterfactual."""
        if self.measure in ("mass", "max", "attribution"):
            return self.wants_high
        return self.measure == "rank" and not self.wants_high

    @property
    def measure_name(self) -> str:
        return f"attribution:{self.method}" if self.measure == "attribution" else self.measure

    def to_json(self) -> dict[str, Any]:
        """The rule as a file writes it (defaults filled in)."""
        layers = self.layers if not isinstance(self.layers, tuple) else f"{self.layers[0]}:{self.layers[1]}"
        data: dict[str, Any] = {"name": self.name, "description": self.description, "from": self.source.to_json()}
        if self.target is not None:
            data["to"] = self.target.to_json()
        data.update(layers=layers, heads="all" if self.heads is None else self.heads, aggregation=self.aggregation)
        data.update(measure=self.measure_name, comparison=self.comparison, threshold=self.threshold)
        data["severity"] = self.severity
        if self.options:
            data["options"] = self.options
        return data


@dataclass(frozen=True)
class RuleSet:
    """The rules of one file, its lexicons and the SHA-256 of its bytes (what results cite)."""

    rules: tuple[Rule, ...]
    lexicons: dict[str, tuple[str, ...]]
    sha256: str
    path: str | None = None
    description: str = ""

    def uses(self, kind: str, value: Any = None) -> bool:
        """Whether a rule selects by ``kind`` (and ``value``): ``uses("class", "pii")``."""
        return any(
            selector is not None and selector.kind == kind and value in (None, selector.value)
            for rule in self.rules
            for selector in (rule.source, rule.target)
        )

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "sha256": self.sha256, "version": 1}


@dataclass(frozen=True)
class RuleProblem:
    """What is wrong with a rule file, and where: ``rules[2].comparison`` on line 14."""

    path: str  # the value's place, "" for the whole file
    line: int | None
    message: str
    file: str | None = None  # another file than the rule file (a lexicon file)

    def describe(self, name: str) -> str:
        where = f"{self.file or name}:{self.line}" if self.line is not None else (self.file or name)
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "line": self.line, "message": self.message, "file": self.file}
