"""The request of ``POST /api/export``: which view, which format, and where its numbers come from."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints, model_validator

from attnscope.server.schemas import Body, Granularity, OptionValue, RunId, Stack

TraceId = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{1,64}$")]
ViewName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{0,40}$")]


class ExportRequest(Body):
    """One view as a figure or its numbers, from exactly one of ``trace_id``, ``run_id`` or ``answer``."""

    view: ViewName = Field(..., description="the view's name (the page's tab id: tokens, heatmap, …)")
    format: Literal["png", "svg", "pdf", "csv", "json", "html"] = "png"
    trace_id: TraceId | None = Field(None, description="a trace this server holds (the page's analysis)")
    run_id: RunId | None = Field(None, description="a stored run")
    answer: dict[str, Any] | None = Field(None, description="the JSON answer the page has, for the answer views")
    text: str | None = Field(None, max_length=2_000_000, description="the answer's text, for masking personal data")
    layer: int = -1
    head: int | Literal["mean", "max"] = "mean"
    query: int = -1
    stack: Stack | None = None
    method: str | None = Field(None, max_length=64, description="token view: colour by this method's scores")
    method_options: dict[str, OptionValue] = Field(default_factory=dict)
    granularity: Granularity = "token"
    metric: str | None = Field(None, max_length=64)
    language: Literal["en", "zh-CN"] = "en"
    title: str | None = Field(None, max_length=300)

    @model_validator(mode="after")
    def _one_source(self) -> ExportRequest:
        given = [name for name in ("trace_id", "run_id", "answer") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of trace_id, run_id or answer")
        return self
