"""The step schedule of integrated gradients, torch-free so that the catalogue can describe it.

``steps="auto"`` grows the step count 32 → 96 → 288 → 864: each stage reuses every gradient of the
one before (the midpoints ``(j + ½) / n`` of ``n`` steps are midpoints of ``3n``), and the schedule
stops at the first stage whose completeness gap ``|delta|`` is at most ``TOLERANCE`` of
``|f(input) − f(baseline)|``, or at ``AUTO_MAX_STEPS``. An explicit step count is 1 to ``MAX_STEPS``.
"""

from __future__ import annotations

from attnscope.errors import InputError

FIRST_STEPS = 32
AUTO_MAX_STEPS = 864
TOLERANCE = 0.05  # |delta| <= 5 % of |f(input) - f(baseline)|
MAX_STEPS = 4096  # an explicit step count may be at most this


def auto_plan() -> list[int]:
    """The stages of ``steps="auto"``: [32, 96, 288, 864]."""
    plan = [FIRST_STEPS]
    while plan[-1] * 3 <= AUTO_MAX_STEPS:
        plan.append(plan[-1] * 3)
    return plan


def describe() -> str:
    """One line for help texts and the catalogue."""
    stages = ", ".join(map(str, auto_plan()))
    return f"interpolation steps; auto: {stages} until |delta| ≤ {TOLERANCE:.0%} of |f(x) − f(baseline)|"


def check_steps(steps: object) -> int | str:
    """``"auto"`` or an int in 1..MAX_STEPS, else an :class:`InputError`."""
    if steps == "auto":
        return "auto"
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= MAX_STEPS:
        raise InputError(f"integrated-gradients steps must be 'auto' or an integer between 1 and {MAX_STEPS}")
    return steps
