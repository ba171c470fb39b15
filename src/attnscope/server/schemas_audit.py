"""The HTTP vocabulary of the audits: rule files checked on a text or a generation (``/api/rules/...``).

A rules text is read by the library's own :func:`attnscope.analysis.rule_file.check_rules_text` while
the request is validated, so a bad rule file is refused like any other bad field (422
``invalid_request``), its first problem named with its line: ``rules: line 7: rules[0].comparison: ...``.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, PrivateAttr, StringConstraints, model_validator

from attnscope.analysis.rule_types import RuleProblem, RuleSet
from attnscope.capture.selection import parse_head
from attnscope.server.schemas import (
    MAX_PARTS,
    Body,
    HasJob,
    HasText,
    HeadSpec,
    LayerSpec,
    PartSpan,
    Stack,
    check_decoding,
)

MAX_RULES_CHARS = 256_000  # a rules text longer than this is refused (422) before it is read
MAX_RULES_TOKENS = 256  # new tokens a check may generate

RulesText = Annotated[str, StringConstraints(max_length=MAX_RULES_CHARS)]
TraceId = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{16}$")]


def rule_problems(text: str) -> tuple[RuleSet | None, list[RuleProblem]]:
    """``(rule set, [])`` of a rules text, or ``(None, problems)``: the file's own problems (schema,
    names, regexes, lexicons, ...) and then unknown ``attribution:METHOD`` methods or their options."""
    from attnscope.analysis.rule_file import check_rules_text
    from attnscope.methods.rules import method_problems

    rule_set, problems = check_rules_text(text)
    if rule_set is not None:
        problems = method_problems(rule_set)
    return (None, problems) if problems else (rule_set, [])


def _first(problems: list[RuleProblem]) -> str:
    first = problems[0]
    where = f"line {first.line}: " if first.line is not None else ""
    more = f" (and {len(problems) - 1} more: POST /api/rules/validate lists them)" if len(problems) > 1 else ""
    return f"{where}{first.path + ': ' if first.path else ''}{first.message}{more}"


class RulesValidateRequest(Body):
    """``POST /api/rules/validate``: a rule file's text (YAML or JSON)."""

    rules: RulesText = Field(
        ..., description=f"the rule file's text, YAML or JSON (at most {MAX_RULES_CHARS:,} characters)"
    )


class RulesGenerate(Body):
    """Generate after the text first (greedy unless asked); rules on the answer are checked at every step."""

    max_new_tokens: int = Field(16, ge=1, le=MAX_RULES_TOKENS)
    do_sample: bool = False
    temperature: float | None = None
    top_p: float | None = None
    sample_top_k: int | None = Field(None, description="sampling: keep the K likeliest tokens")
    seed: int | None = None
    num_beams: int = 1
    stop: list[Annotated[str, StringConstraints(min_length=1, max_length=200)]] | None = Field(None, max_length=16)

    @model_validator(mode="after")
    def _settings(self) -> RulesGenerate:
        check_decoding(self)
        return self


class RulesCheckRequest(HasText, HasJob):
    """``POST /api/rules/check``: the rules checked on the text's capture, on a generation after it
    (``generate``), or on a trace the server keeps (``trace_id``: a generation the page shows)."""

    rules: RulesText = Field(..., description="the rule file's text, YAML or JSON")
    generate: RulesGenerate | None = Field(None, description="generate after the text first (null: capture it)")
    trace_id: TraceId | None = Field(None, description="check this kept trace of the same text (a generation's)")
    chat: bool = Field(False, description="the text is the user message of the model's chat template")
    system: str | None = Field(None, max_length=100_000, description="with chat: a system message")
    parts: list[PartSpan] = Field(default_factory=list, max_length=MAX_PARTS, description="named spans for part: NAME")
    layer: LayerSpec = Field(-1, description="the view of the stored run: a layer, a range (mean) or all")
    head: HeadSpec = Field("mean", description="the view of the stored run: a head, a list (mean), mean or max")
    query: int = Field(-1, description="the stored analysis's query token")
    stack: Stack | None = None
    _rule_set: RuleSet | None = PrivateAttr(None)

    @model_validator(mode="after")
    def _check(self) -> RulesCheckRequest:
        if self.trace_id is not None and (self.generate is not None or self.chat):
            raise ValueError("trace_id names a kept trace: leave out generate and chat")
        if self.system is not None and not self.chat:
            raise ValueError("system is for chat")
        if parse_head(self.head) is None:
            raise ValueError("head: the stored run shows one row: a head, a list, mean or max (not all)")
        names = [part.name for part in self.parts]
        if len(set(names)) != len(names):
            raise ValueError("part names must be distinct")
        rule_set, problems = rule_problems(self.rules)
        if problems:
            raise ValueError(f"rules: {_first(problems)}")
        self._rule_set = rule_set
        return self

    @property
    def rule_set(self) -> RuleSet:
        assert self._rule_set is not None  # set by the validator
        return self._rule_set
