"""The HTTP vocabulary of the attention graph and the flow Sankey (``GET /api/traces/{id}/graph`` and
``/sankey``): query parameters checked with the library's own limits, so a refusal reads like the CLI's."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StringConstraints

from attnscope.analysis.graph import DEFAULT_MAX_EDGES, DEFAULT_THRESHOLD, MAX_EDGES_LIMIT
from attnscope.analysis.sankey import DEFAULT_TOP, MAX_TOP
from attnscope.server.schemas import HeadText, OneLayer, Params, Stack

TokenList = Annotated[str, StringConstraints(pattern=r"^\s*-?\d+(\s*,\s*-?\d+)*\s*$", max_length=400)]


class GraphParams(Params):
    layer: OneLayer = -1
    head: HeadText = Field("mean", description="a head, a list such as 1,3 (their mean), mean or max")
    threshold: float = Field(DEFAULT_THRESHOLD, ge=0, le=1, description="edges with a weight at least this (0-1)")
    max_edges: int = Field(DEFAULT_MAX_EDGES, ge=1, le=MAX_EDGES_LIMIT, description="keep the heaviest edges")
    stack: Stack | None = None


class SankeyParams(Params):
    head: HeadText = Field("mean", description="heads combined in every layer: a head, a list, mean or max")
    query: int = Field(-1, description="the prediction's position (default -1: the last token)")
    top: int = Field(DEFAULT_TOP, ge=0, le=MAX_TOP, description="the tokens with the most rollout to the prediction")
    tokens: TokenList | None = Field(None, description="more token positions to show, e.g. 1,4,7")
    residual: float = Field(0.5, ge=0, le=1, description="the residual share r of Â = r·I + (1 − r)·A")
    stack: Stack | None = None

    def token_list(self) -> list[int]:
        return [int(item) for item in self.tokens.split(",")] if self.tokens else []
