"""The HTTP vocabulary of counterfactuals (``POST /api/counterfactual``): the edit forms of
:func:`attnscope.analysis.edits.edit_from_dict`, each its own model (chosen by its key: ``replace``,
``delete``, ``remove`` or ``insert``), and the request. Whether an edit's text occurs, edits overlap
or the text is left empty is the library's to say (400), before the model runs.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, Discriminator, Field, StringConstraints, Tag, model_validator

from attnscope.capture.selection import parse_head
from attnscope.methods import catalogue
from attnscope.server.schemas import Body, HasJob, HasText, HeadSpec, LayerSpec

MAX_EDITS = 32
MAX_EDIT_CHARS = 10_000
EditText = Annotated[str, StringConstraints(min_length=1, max_length=MAX_EDIT_CHARS)]
Occurrence = Literal["all", "first", "last"] | Annotated[int, Field(ge=1)]
Anchor = (
    Annotated[int, Field(ge=0)]
    | Annotated[str, StringConstraints(pattern=r"^(before|after):[\s\S]+$", max_length=MAX_EDIT_CHARS + 7)]
)


class EditBase(Body):
    occurrence: Occurrence = Field("all", description="which occurrences: all, first, last or the n-th (from 1)")
    words: bool = Field(True, description="match whole words only (false: inside words too)")


class ReplaceEdit(EditBase):
    replace: EditText = Field(..., description="the text to replace (literal, case-sensitive)")
    with_: Annotated[str, StringConstraints(max_length=MAX_EDIT_CHARS)] = Field(
        ..., alias="with", description="its replacement (empty: a deletion)"
    )
    start: int | None = Field(None, ge=0, description="only the occurrence at this character offset")


class DeleteEdit(EditBase):
    delete: EditText
    start: int | None = Field(None, ge=0)


class RemoveEdit(EditBase):
    remove: EditText = Field(..., description="the rules engine's hint: the same as delete")
    start: int | None = Field(None, ge=0)


class InsertEdit(EditBase):
    insert: EditText
    at: Anchor = Field(..., description="a character offset, before:WORD or after:WORD")


def _edit_form(value: Any) -> str | None:
    keys = value if isinstance(value, dict) else vars(value) if isinstance(value, BaseModel) else {}
    return next((form for form in ("replace", "delete", "remove", "insert") if form in keys), None)


EditSpec = Annotated[
    Annotated[ReplaceEdit, Tag("replace")]
    | Annotated[DeleteEdit, Tag("delete")]
    | Annotated[RemoveEdit, Tag("remove")]
    | Annotated[InsertEdit, Tag("insert")],
    Discriminator(
        _edit_form,
        custom_error_type="edit_form",
        custom_error_message="an edit is {replace, with}, {delete}, {remove} or {insert, at}",
    ),
]


def _counterfactual_method(value: str) -> str:
    names = ("auto", "none", *catalogue.attribution_names())
    if value not in names:
        raise ValueError(f"unknown attribution method {value!r}; methods: {', '.join(names)}")
    return value


class CounterfactualRequest(HasText, HasJob):
    """``POST /api/counterfactual``: the text, its edits (and/or a swap table) and the view compared."""

    edits: list[EditSpec] = Field(default_factory=list, max_length=MAX_EDITS, description="applied together")
    swap: Literal["gender"] | None = Field(None, description="also swap this table's identity terms")
    layer: LayerSpec = Field(-1, description="a layer, a range such as 4-7 (mean), or all")
    head: HeadSpec = Field("mean", description="a head, a list (mean), mean or max")
    query: int = Field(-1, description="a token of the original (default: the last, compared with the last)")
    method: Annotated[str, AfterValidator(_counterfactual_method)] = Field(
        "auto", description="the attribution compared: auto (grad-x-input), none, or a token attribution method"
    )
    top_k: int = Field(10, ge=1, le=50)
    top_heads: int = Field(10, ge=1, le=100, description="heads listed as changed most")

    @model_validator(mode="after")
    def _something(self) -> CounterfactualRequest:
        if not self.edits and self.swap is None:
            raise ValueError("give at least one edit or a swap")
        if parse_head(self.head) is None:
            raise ValueError("head: a counterfactual compares combined rows: a head, a list, mean or max (not all)")
        return self

    def edit_dicts(self) -> list[dict[str, Any]]:
        """The edits in the library's JSON forms (:func:`attnscope.analysis.edits.edit_from_dict`)."""
        return [edit.model_dump(by_alias=True, exclude_none=True) for edit in self.edits]
