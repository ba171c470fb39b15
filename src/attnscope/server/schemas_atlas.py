"""The HTTP vocabulary of the model view, the head atlas and the joint query–key projection."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from attnscope.analysis.atlas import PROJECTIONS
from attnscope.server.schemas import Backend, HasJob, HasText, Params, Stack, _enum, _one_of

MAX_MODEL_VIEW_SIZE = 64  # cells per thumbnail side
Projection = Annotated[str, AfterValidator(_one_of(PROJECTIONS)), _enum(PROJECTIONS)]


class ModelViewParams(Params):
    size: int = Field(32, ge=1, le=MAX_MODEL_VIEW_SIZE, description="cells per thumbnail side (at most)")
    pool: Literal["max", "mean"] = Field("max", description="how a block of f x f tokens becomes one cell")
    stack: Stack | None = None


class ProjectionOptions(HasText, HasJob):
    projection: Projection = "pca"
    seed: int = Field(0, ge=0, le=2**31 - 1, description="t-SNE and UMAP: the random seed")
    perplexity: float | None = Field(None, gt=0, le=1000, description="t-SNE (default min(30, (points - 1) / 3))")
    n_neighbors: int | None = Field(None, ge=2, le=1000, description="UMAP (default min(15, points - 1))")
    stack: Stack | None = None


class AtlasRequest(ProjectionOptions):
    backend: Backend = "auto"
    threshold: float = Field(0.01, gt=0, lt=1, description="sparsity threshold of the head metrics")


class QKRequest(ProjectionOptions):
    layer: int = Field(-1, description="one layer (negative from the end)")
    head: int | Literal["all"] = Field("all", description="one head, or all heads of the layer (each transformed)")
    max_points: int | None = Field(None, ge=2, description="subsample beyond this many points")
