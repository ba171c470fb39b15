"""The HTTP vocabulary: one Pydantic model per route, for JSON bodies and for query parameters alike.

Bodies are strict (a number is not a string, unknown fields are refused, NaN and infinities are
refused); query parameters arrive as text and are converted. Selections (layer, head), texts and
method options are checked by the same functions the library and the CLI use, so a request is
refused with the same one-line message the CLI prints.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from attnscope.analysis.units import GRANULARITIES
from attnscope.capture.reads import BACKENDS
from attnscope.capture.selection import STACKS, parse_head, parse_layers
from attnscope.capture.tokens import MAX_TEXT_CHARS, check_text
from attnscope.errors import InputError
from attnscope.governance.dp import check_parameters
from attnscope.methods import catalogue
from attnscope.methods.spec import OBJECTIVES


def _one_of(choices: tuple[str, ...]) -> Callable[[str], str]:
    """A membership check against one of the library's vocabularies (the 422 lists the choices)."""

    def check(value: str) -> str:
        if value not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}")
        return value

    return check


def _enum(choices: tuple[str, ...]) -> WithJsonSchema:
    return WithJsonSchema({"type": "string", "enum": list(choices)})


# The vocabularies are the library's own tuples, so a new backend, stack, unit or objective is
# accepted here (and listed in /docs) as soon as the library has it.
Backend = Annotated[str, AfterValidator(_one_of(BACKENDS)), _enum(BACKENDS)]
Stack = Annotated[str, AfterValidator(_one_of(STACKS)), _enum(STACKS)]
Granularity = Annotated[str, AfterValidator(_one_of(GRANULARITIES)), _enum(GRANULARITIES)]
Objective = Annotated[str, AfterValidator(_one_of(OBJECTIVES)), _enum(OBJECTIVES)]
JobId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
OptionValue = int | float | str | list[int]

MAX_COMPARE_TEXTS = 8
MAX_PARTS = 50


class Body(BaseModel):
    """A JSON request body: strict types, no unknown fields, no NaN or infinities."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


class Params(BaseModel):
    """Query parameters: converted from text, no unknown names."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class HasText(Body):
    text: str = Field(..., description=f"the input text (1 to {MAX_TEXT_CHARS:,} characters, not only whitespace)")

    @field_validator("text")
    @classmethod
    def _text(cls, value: str) -> str:
        return check_text(value, allow_blank=False)


class HasJob(Body):
    progress_id: JobId | None = Field(
        None, description="publish progress at /api/progress/{id}; cancel at /api/jobs/{id}/cancel"
    )


def _layer(value: Any) -> Any:
    parse_layers(value)
    return value


def _head(value: Any) -> Any:
    parse_head(value)
    return value


def _attribution_method(value: str) -> str:
    if value not in catalogue.attribution_names():
        raise ValueError(f"unknown attribution method {value!r}; methods: {', '.join(catalogue.attribution_names())}")
    return value


LayerSpec = Annotated[int | str, AfterValidator(_layer)]
HeadSpec = Annotated[int | str | list[int], AfterValidator(_head)]
HeadText = Annotated[str, AfterValidator(_head)]
MethodName = Annotated[str, AfterValidator(_attribution_method)]


class HasDP(Body):
    """Differential privacy on the answer's released numbers (README: Differential privacy)."""

    dp_epsilon: float | None = Field(
        None, gt=0, le=100, description="noise the released weights or scores with this ε (null: exact values)"
    )
    dp_mechanism: Literal["laplace", "gaussian"] = Field("laplace", description="the OpenDP mechanism")
    dp_delta: float | None = Field(None, gt=0, lt=1, description="δ of the Gaussian mechanism")

    @model_validator(mode="after")
    def _check_dp(self) -> HasDP:
        if self.dp_epsilon is None:
            if self.dp_delta is not None or self.dp_mechanism != "laplace":
                raise InputError("dp_mechanism and dp_delta need dp_epsilon")
        else:
            check_parameters(self.dp_epsilon, self.dp_mechanism, self.dp_delta)
        return self


class AnalyzeRequest(HasText, HasJob, HasDP):
    layer: LayerSpec = Field(-1, description="a layer, a range such as 4-7 (mean), or all")
    head: HeadSpec = Field("mean", description="a head, a list (mean), mean or max")
    query: int = -1
    top_k: int = Field(10, ge=1, le=100)
    backend: Backend = "auto"
    stack: Stack | None = None
    include_tokens: bool = Field(
        True, description="false: leave out tokens (the client has them from an earlier answer on the same text)"
    )
    trace_id: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{16}$")] | None = Field(
        None, description="analyse this kept trace of the same text (a generation's) instead of capturing it"
    )


class SwitchRequest(Body):
    spec: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)] = Field(
        ..., description="a catalog alias, hub id, folder, .gguf file or tiny:<family>"
    )


def _options(method: str, options: dict[str, OptionValue]) -> dict[str, OptionValue]:
    catalogue.get(method).parse_options(options)
    return options


class AttributeRequest(HasText, HasJob, HasDP):
    method: MethodName = Field(..., description="a token attribution method (GET /api/methods)")
    granularity: Granularity = "token"
    target: str | None = Field(None, min_length=1, max_length=2000)
    objective: Objective | None = None
    query: int = -1
    options: dict[str, OptionValue] = Field(default_factory=dict, description="the method's options")

    @model_validator(mode="after")
    def _check_options(self) -> AttributeRequest:
        _options(self.method, self.options)
        return self


class AgreementRequest(HasText, HasJob, HasDP):
    methods: list[MethodName] | None = Field(None, min_length=2, max_length=32)
    granularity: Granularity = "word"
    target: str | None = Field(None, min_length=1, max_length=2000)
    query: int = Field(-1, description="the token whose prediction every method explains (default: the last)")
    options: dict[str, OptionValue] = Field(default_factory=dict, description="options of the methods compared")

    @field_validator("methods")
    @classmethod
    def _distinct(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and len(set(value)) != len(value):
            raise ValueError("name each method once")
        return value

    @model_validator(mode="after")
    def _check_options(self) -> AgreementRequest:
        catalogue.shared_options(self.methods, self.options)
        return self


_THRESHOLD = catalogue.get("head-metrics").option("threshold")  # one default and range: the catalogue's


class ReportRequest(HasText, HasJob, HasDP):
    methods: list[MethodName] | None = Field(None, min_length=1, max_length=32, description="default: every method")
    granularity: Granularity = "word"
    target: str | None = Field(None, min_length=1, max_length=2000)
    objective: Objective | None = Field(None, description="what gradient and occlusion methods explain")
    sign: bool = Field(False, description="add report.intoto.json, signed with the server's key")
    language: Literal["en", "zh-CN"] = Field("en", description="the language of report.html's words (the page's)")


class HeadsRequest(HasText, HasJob):
    backend: Backend = "auto"
    threshold: float = Field(
        _THRESHOLD.default, ge=_THRESHOLD.minimum, le=_THRESHOLD.maximum, description=_THRESHOLD.help
    )
    stack: Stack | None = None


class PartSpan(Body):
    name: str = Field(..., min_length=1, max_length=100)
    start: int = Field(..., ge=0)
    end: int = Field(..., ge=1)

    @model_validator(mode="after")
    def _span(self) -> PartSpan:
        if self.end <= self.start:
            raise ValueError(f"part {self.name!r}: end ({self.end}) must be greater than start ({self.start})")
        return self


class PartsRequest(HasText, HasJob):
    parts: list[PartSpan] = Field(..., min_length=1, max_length=MAX_PARTS)
    query: int | Annotated[str, StringConstraints(min_length=1, max_length=100)] | None = None
    backend: Backend = "auto"

    @field_validator("parts")
    @classmethod
    def _names(cls, value: list[PartSpan]) -> list[PartSpan]:
        names = [part.name for part in value]
        if len(set(names)) != len(names):
            raise ValueError("part names must be distinct")
        return value


class CompareRequest(HasJob):
    texts: list[str] = Field(..., min_length=1, max_length=MAX_COMPARE_TEXTS)
    layer: LayerSpec = -1
    head: HeadSpec = "mean"
    granularity: Granularity = "word"

    @field_validator("texts")
    @classmethod
    def _texts(cls, value: list[str]) -> list[str]:
        return [check_text(text, allow_blank=False) for text in value]


class Message(Body):
    role: str = Field(..., min_length=1, max_length=50, description="system, user or assistant")
    content: str = Field(..., max_length=MAX_TEXT_CHARS)


def _step_method(value: str) -> str:
    if value not in catalogue.step_names():
        raise ValueError(f"{value!r} cannot attribute generation steps; these can: {', '.join(catalogue.step_names())}")
    return value


StepMethod = Annotated[str, AfterValidator(_step_method)]


class StepAttributeRequest(HasJob):
    method: StepMethod = Field(..., description="a per-step attribution method")
    options: dict[str, OptionValue] = Field(default_factory=dict, description="the method's options")

    @model_validator(mode="after")
    def _check_options(self) -> StepAttributeRequest:
        _options(self.method, self.options)
        return self


class GenerateRequest(HasJob):
    """``POST /api/generate``: the prompt (``text``, or chat ``messages``), the decoding settings
    (checked by the library's own :func:`check_settings`) and the view of the steps' attention."""

    text: str | None = Field(None, description="the prompt (or messages)")
    messages: list[Message] | None = Field(None, min_length=1, max_length=64, description="a chat, template-rendered")
    max_new_tokens: int = 64
    do_sample: bool = False
    temperature: float | None = None
    top_p: float | None = None
    sample_top_k: int | None = Field(None, description="sampling: keep the K likeliest tokens")
    seed: int | None = None
    num_beams: int = 1
    stop: list[str] | None = None
    layer: LayerSpec = Field(-1, description="the layer (or range, mean) of each step's attention row")
    head: HeadSpec = Field("mean", description="a head, a list (mean), mean or max")
    stack: Stack | None = Field(None, description="encoder-decoders: decoder or cross (default)")
    top_k: int = Field(10, ge=1, le=100, description="candidates shown per step")
    attribute: StepMethod | None = Field(None, description="also score every earlier token per step by this method")
    options: dict[str, OptionValue] = Field(default_factory=dict, description="the attribution method's options")

    @field_validator("text")
    @classmethod
    def _text(cls, value: str | None) -> str | None:
        return None if value is None else check_text(value, allow_blank=False)

    @model_validator(mode="after")
    def _settings(self) -> GenerateRequest:
        if (self.text is None) == (self.messages is None):
            raise ValueError("give exactly one of text and messages")
        if parse_head(self.head) is None:
            raise ValueError("head: each step shows one row: a head, a list, mean or max (not all)")
        if self.attribute is not None:
            _options(self.attribute, self.options)
        elif self.options:
            raise ValueError("options are for attribute (a per-step attribution method)")
        check_decoding(self)
        return self


def check_decoding(body: Any) -> None:
    """A request's decoding settings (``max_new_tokens``, ``do_sample``, ``temperature``, ``top_p``,
    ``sample_top_k``, ``seed``, ``num_beams``, ``stop``) checked as ``model.generate`` would take them."""
    from attnscope.capture.decoding import check_settings

    b = body
    check_settings(b.max_new_tokens, b.do_sample, b.temperature, b.top_p, b.sample_top_k, b.seed, b.num_beams, b.stop,
                   names={"top_k": "sample_top_k"})  # fmt: skip


# --- query parameters of the array routes -----------------------------------------------------------
def _one_layer(value: Any) -> Any:
    """A single layer index from query text, read by the library's own parser: ranges (``0-1``,
    ``00-3``), lists and ``all`` are analyses of several layers, refused on single-map routes."""
    if not isinstance(value, str):
        return value  # the default
    try:
        layer = parse_layers(value)
    except InputError:
        raise ValueError("a layer index (an integer, negative from the end) is expected") from None
    if not isinstance(layer, int):
        raise ValueError("one layer index is expected here (a range, a list or all covers several layers)")
    return layer


OneLayer = Annotated[
    int,
    BeforeValidator(_one_layer),
    WithJsonSchema({"type": "string", "description": "one layer index (negative from the end)"}),
]


class RowParams(Params):
    layer: OneLayer = -1
    head: HeadText = Field("all", description="all (every head), a head, mean or max")
    query: int = -1
    stack: Stack | None = None


class GridParams(Params):
    query: int = -1
    stack: Stack | None = None


class MapParams(Params):
    layer: OneLayer = -1
    head: HeadText = Field("mean", description="a head, a list such as 1,3, mean or max")
    stack: Stack | None = None


class MatrixParams(MapParams):
    encoding: Literal["uint8", "float16"] = "uint8"


class TileParams(MapParams):
    level: int = Field(..., ge=0, le=64)
    ty: int = Field(..., ge=0)
    tx: int = Field(..., ge=0)


class StepsParams(MapParams):
    pass


RunId = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{16}$")]
_WHEN = r"^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?Z?)?$"  # a UTC date or time, ISO 8601


class RunsParams(Params):
    text: str | None = Field(None, max_length=1000, description="runs whose text contains this (any case)")
    model: str | None = Field(None, max_length=500, description="runs whose model name or spec contains this")
    method: str | None = Field(None, max_length=100)
    kind: Literal["analysis", "attribution", "generation", "counterfactual", "bias"] | None = None
    since: Annotated[str, StringConstraints(pattern=_WHEN)] | None = Field(None, description="UTC date or time, from")
    until: Annotated[str, StringConstraints(pattern=_WHEN)] | None = Field(None, description="UTC date or time, before")
    limit: int = Field(100, ge=1, le=1000)
    offset: int = Field(0, ge=0)
