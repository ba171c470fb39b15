"""Rules and alerts: a rule set checked on a capture or a generation, personal data included.

:func:`check_rules` is the one entry point of the CLI (``attnscope rules check``), the server and the
runs store: it finds the personal-data spans that ``class: pii`` rules look at (:func:`find_pii`,
only when a rule asks for them), runs ``attribution:METHOD`` rules with the model
(:mod:`attnscope.methods.rules`) and evaluates every rule (:mod:`attnscope.analysis.rules`).
:func:`attnscope.render.rules.rules_json` is the report's JSON contract.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from attnscope.analysis.rule_types import RuleSet
from attnscope.analysis.rules import RuleReport
from attnscope.governance.pii import find_pii
from attnscope.methods.rules import evaluate_with_model

if TYPE_CHECKING:
    from attnscope.capture.tokens import Part
    from attnscope.capture.trace import Trace
    from attnscope.models.loaded import LoadedModel


def check_rules(
    model: LoadedModel | None, trace: Trace, rule_set: RuleSet, *, parts: Sequence[Part] | None = None
) -> RuleReport:
    """Every rule of ``rule_set`` on ``trace`` (a capture, or a generation: step rules at every step).

    Args:
        model: the model the trace was made with; needed by ``attribution:METHOD`` rules whose method
            runs the model (None: those rules are not evaluated, with a note).
        trace: from :func:`attnscope.capture` or :func:`attnscope.generate`.
        rule_set: from :func:`attnscope.analysis.rule_file.load_rules` / ``parse_rules``.
        parts: named character spans for ``part`` selectors, added to the trace's chat turns.
    """
    pii = [(span.start, span.end) for span in find_pii(trace.text)] if rule_set.uses("class", "pii") else None
    return evaluate_with_model(model, trace, rule_set, parts=parts, pii_spans=pii)
