"""Routes for the analysis panels: attribution methods, head metrics, method agreement, prompt parts.

Each answer carries the same JSON as the library's ``to_json`` (and the CLI's ``--json``), plus
``token_scores``: the score of each token's unit, so the front end can colour its token strip.
Expensive methods are bounded by ``MAX_ATTRIBUTION_TOKENS``.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from fastapi import FastAPI
from pydantic import BaseModel, Field

from attnscope.capture.engine import capture
from attnscope.capture.tokens import Part
from attnscope.errors import InputError
from attnscope.server.host import ModelHost

# Gradient and occlusion methods run the model (or its backward) once per unit or step: bounded.
MAX_ATTRIBUTION_TOKENS = 1024
MAX_TEXT_CHARS = 200_000

Method = Literal["attention", "rollout", "flow", "grad-norm", "grad-x-input", "integrated-gradients", "occlusion"]
Granularity = Literal["token", "word", "sentence", "paragraph"]


class AttributeRequest(BaseModel):
    text: str
    method: Method
    granularity: Granularity = "token"
    target: str | None = Field(None, max_length=2000)
    objective: Literal["next-token", "continuation", "loss"] | None = None
    query: int = -1
    steps: int = Field(32, ge=1, le=256)
    mode: Literal["remove", "mask"] = "remove"
    layers: str = "all"


class AgreementRequest(BaseModel):
    text: str
    methods: list[Method] | None = None
    granularity: Granularity = "word"
    steps: int = Field(32, ge=1, le=256)


class HeadsRequest(BaseModel):
    text: str
    backend: Literal["auto", "full", "qk"] = "auto"


class PartSpan(BaseModel):
    name: str = Field(..., min_length=1, max_length=100)
    start: int = Field(..., ge=0)
    end: int = Field(..., ge=1)


class PartsRequest(BaseModel):
    text: str
    parts: list[PartSpan] = Field(..., min_length=1, max_length=50)
    query: int | str | None = None  # a token index, a part name, or the last token
    backend: Literal["auto", "full", "qk"] = "auto"


def _check_text(text: str) -> None:
    if len(text) > MAX_TEXT_CHARS:
        raise InputError(f"text is {len(text):,} characters; the server accepts {MAX_TEXT_CHARS:,}")


def _token_scores(result: Any, n_tokens: int) -> list[float | None]:
    scores: list[float | None] = [None] * n_tokens
    for unit, score in zip(result.units, result.scores, strict=True):
        for index in unit.tokens:
            scores[index] = None if not np.isfinite(score) else float(score)
    return scores


def add_analysis_routes(app: FastAPI, host: ModelHost) -> None:
    def trace_of(text: str, backend: str) -> Any:
        return host.trace_for(text, backend, lambda model: capture(model, text, backend=backend))[1]  # type: ignore[arg-type]

    @app.post("/api/attribute", summary="Token importance by one method (the CLI's `attribute --json`)")
    def attribute_route(request: AttributeRequest) -> dict[str, Any]:
        from attnscope.analysis.attribution import ATTENTION_METHODS, attribute

        _check_text(request.text)
        model = host.current()
        options: dict[str, Any] = {}
        trace = None
        if request.method in ATTENTION_METHODS:
            trace = trace_of(request.text, "auto")
            if request.method == "attention":
                options["layers"] = request.layers
        else:
            n_tokens = len(model.tokenizer(request.text, add_special_tokens=True)["input_ids"])
            if n_tokens > MAX_ATTRIBUTION_TOKENS:
                raise InputError(
                    f"{request.method} in the web app is limited to {MAX_ATTRIBUTION_TOKENS} tokens "
                    f"(this text has {n_tokens}); use `attnscope attribute` for longer texts"
                )
        result = attribute(
            model,
            request.text,
            request.method,
            target=request.target,
            objective=request.objective,
            granularity=request.granularity,
            query=request.query,
            trace=trace,
            steps=request.steps,
            mode=request.mode,
            **options,
        )
        body = result.to_json()
        n_tokens = max((i for unit in result.units for i in unit.tokens), default=-1) + 1
        body["token_scores"] = _token_scores(result, n_tokens)
        return body

    @app.post("/api/agreement", summary="Every method on one text and their rank agreement")
    def agreement_route(request: AgreementRequest) -> dict[str, Any]:
        from attnscope.analysis.report import DEFAULT_REPORT_METHODS, compare_methods

        _check_text(request.text)
        model = host.current()
        n_tokens = len(model.tokenizer(request.text, add_special_tokens=True)["input_ids"])
        if n_tokens > MAX_ATTRIBUTION_TOKENS:
            raise InputError(f"agreement in the web app is limited to {MAX_ATTRIBUTION_TOKENS} tokens ({n_tokens})")
        comparison = compare_methods(
            model,
            request.text,
            methods=request.methods or DEFAULT_REPORT_METHODS,
            granularity=request.granularity,
            steps=request.steps,
            trace=trace_of(request.text, "auto"),
        )
        return comparison.to_json()

    @app.post("/api/heads", summary="Metrics and a type label for every layer x head (the CLI's `heads --json`)")
    def heads_route(request: HeadsRequest) -> dict[str, Any]:
        from attnscope.analysis.heads import measure_heads, metrics_json

        _check_text(request.text)
        model = host.current()
        trace = trace_of(request.text, request.backend)
        metrics, labels, note = measure_heads(model, trace, backend=request.backend)
        return {"model": trace.model["spec"], "metrics": metrics_json(metrics), "labels": labels, "note": note}

    @app.post("/api/parts", summary="Attention mass from a query region to each named part, per layer and head")
    def parts_route(request: PartsRequest) -> dict[str, Any]:
        from attnscope.analysis.parts import part_attention

        _check_text(request.text)
        trace = trace_of(request.text, request.backend)
        parts = [Part(p.name, p.start, p.end) for p in request.parts]
        names, mass = part_attention(trace, parts, query=request.query)
        return {
            "parts": names,
            "mass": np.round(mass, 6).tolist(),  # (layers, heads, parts + 1)
            "mean_over_heads": np.round(mass.mean(axis=1), 6).tolist(),  # (layers, parts + 1)
        }
