"""``POST /api/compare/models``: two models (or the loaded model and an adapter over it) on one text."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints, field_validator, model_validator

from attnscope.errors import InputError
from attnscope.methods.compare_models import DEFAULT_METHOD, check_method
from attnscope.server.schemas import HasJob, HasText

Spec = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]


class ModelCompareRequest(HasText, HasJob):
    """Model A is the loaded model; B is ``model`` (a spec; null: the loaded model) with ``adapter``
    (a PEFT adapter folder; null: none) applied over it. At least one of the two is given."""

    model: Spec | None = Field(None, description="model B: a catalog alias, hub id, folder, .gguf or tiny:<family>")
    adapter: Spec | None = Field(
        None, description="a PEFT adapter folder (adapter_config.json + adapter_model.safetensors) applied over B"
    )
    layers: list[int] | None = Field(
        None,
        min_length=1,
        max_length=512,
        description="layers of A (negative count from the end), each once; null: all. The maps hold at most "
        "4,000,000 cells (layers × units²)",
    )
    method: str = Field(DEFAULT_METHOD, description="token attribution run on both models, or none")
    granularity: Literal["word", "sentence", "paragraph"] = "word"
    top_k: int = Field(5, ge=1, le=50, description="predictions shown for each model")

    @field_validator("method")
    @classmethod
    def _method(cls, value: str) -> str:
        return check_method(value)

    @field_validator("layers")
    @classmethod
    def _layers(cls, value: list[int] | None) -> list[int] | None:
        if value is not None and len(set(value)) != len(value):
            raise InputError("layers lists a layer twice; name each layer once")
        return value

    @model_validator(mode="after")
    def _second(self) -> ModelCompareRequest:
        if self.model is None and self.adapter is None:
            raise InputError("name model B (model) or an adapter to apply over the loaded model (adapter)")
        return self
