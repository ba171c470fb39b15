"""The HTTP vocabulary of bias probes (``POST /api/bias``): a packaged suite by name and the
bootstrap's options. The suite's name is checked against the packaged suites while the request is
validated (422 ``invalid_request``); a file path is never read on the server's side.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field

from attnscope.analysis.bias import DEFAULT_CONFIDENCE
from attnscope.server.schemas import HasJob

MAX_RESAMPLES = 10_000  # the library allows 100,000: the page's requests stay interactive
DEFAULT_RESAMPLES = 1000
MAX_TOP = 20


def _packaged(name: str) -> str:
    from attnscope.methods.bias_suites import suite_names

    names = suite_names()
    if name not in names:
        raise ValueError(f"unknown bias suite {name!r}; packaged suites: {', '.join(names)}")
    return name


SuiteName = Annotated[str, AfterValidator(_packaged)]


class BiasRequest(HasJob):
    """``POST /api/bias``: run a packaged suite through the loaded model (``attnscope bias --json``)."""

    suite: SuiteName = Field(..., max_length=200, description="a packaged suite's name (GET /api/bias/suites)")
    resamples: int = Field(DEFAULT_RESAMPLES, ge=1, le=MAX_RESAMPLES, description="bootstrap resamples of the pairs")
    seed: int = Field(0, ge=0, lt=2**63, description="seed of the resampling (same seed: same intervals)")
    confidence: float = Field(DEFAULT_CONFIDENCE, ge=0.5, le=0.999, description="the intervals' confidence")
    top: int = Field(5, ge=1, le=MAX_TOP, description="heads listed per pair and per term role")
