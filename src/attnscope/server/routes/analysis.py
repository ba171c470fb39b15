"""Routes for the analysis panels: attribution, method agreement, head metrics, prompt parts, comparisons.

Each answer is the JSON contract the CLI's ``--json`` prints for the same request
(:mod:`attnscope.render.json`). Methods that run the model many times (gradients, occlusion,
agreement) are bounded by ``INTERACTIVE_MAX_TOKENS`` here; the CLI and the library take longer texts.
Every route accepts a ``progress_id``: its progress is streamed and it can be cancelled. Every
route reads the current model once and uses it for the whole request (a model switch meanwhile
never mixes two models in one answer).
"""

from __future__ import annotations

from typing import Any, cast

from fastapi import APIRouter

from attnscope.analysis.units import Granularity
from attnscope.capture.engine import Backend, capture
from attnscope.capture.tokens import Part
from attnscope.errors import InputError
from attnscope.governance.dp import privatize_answer
from attnscope.methods import catalogue
from attnscope.models.loaded import LoadedModel
from attnscope.progress import Job
from attnscope.render import json as contracts
from attnscope.server.host import ModelHost
from attnscope.server.routes.analyze import TRACE_TOP_K
from attnscope.server.routes.runs import keep
from attnscope.server.schemas import AgreementRequest, AttributeRequest, CompareRequest, HeadsRequest, PartsRequest

# Methods that run the model again are limited to this many tokens in the web app (1024 tokens of
# occlusion are 1024 forward passes); `attnscope attribute` and the library have no such limit.
INTERACTIVE_MAX_TOKENS = 1024


def check_interactive(model: LoadedModel, text: str, what: str) -> None:
    n_tokens = len(model.tokenizer(text, add_special_tokens=True)["input_ids"])
    model.check_length(n_tokens)
    if n_tokens > INTERACTIVE_MAX_TOKENS:
        raise InputError(
            f"{what} in the web app is limited to {INTERACTIVE_MAX_TOKENS} tokens (this text has {n_tokens}); "
            "use the attnscope command for longer texts"
        )


def router(host: ModelHost) -> APIRouter:
    api = APIRouter(prefix="/api", tags=["analysis"])

    def trace_of(model: LoadedModel, text: str, backend: str, job: Job | None) -> Any:
        """The trace of ``text`` by ``model`` (cached per model, backend and text), made with ``job``'s
        progress and cancellation; kept with the route's maximum top-k, as /api/analyze keeps it."""

        def make(chosen: LoadedModel) -> Any:
            return capture(chosen, text, backend=cast(Backend, backend), top_k=TRACE_TOP_K, progress=job)

        return host.trace_for(model, text, backend, make)[1]

    @api.post("/attribute", summary="Token importance by one method (`attribute --json`)")
    def attribute_route(request: AttributeRequest) -> dict[str, Any]:
        from attnscope.methods.run import attribute

        model = host.current()
        spec = catalogue.get(request.method)
        options: dict[str, Any] = dict(request.options)
        with host.running(request.progress_id) as job:
            trace = None
            if "trace" in spec.needs:
                trace = trace_of(model, request.text, "auto", job)
            else:
                check_interactive(model, request.text, request.method)
            result = attribute(
                model,
                request.text,
                request.method,
                target=request.target,
                objective=request.objective,
                granularity=request.granularity,
                query=request.query,
                trace=trace,
                progress=job,
                **options,
            )
        answer = contracts.attribution_json(result)
        if request.dp_epsilon is not None:  # noised before it is stored or returned
            answer = privatize_answer(
                "attribution", answer, request.dp_epsilon, mechanism=request.dp_mechanism, delta=request.dp_delta
            )
        return keep(host, "attribution", request.text, answer, request.method)

    @api.post(
        "/agreement", summary="Every attribution method on one text and their rank agreement (`agreement --json`)"
    )
    def agreement_route(request: AgreementRequest) -> dict[str, Any]:
        from attnscope.methods.agreement import compare_methods

        model = host.current()
        check_interactive(model, request.text, "agreement")
        with host.running(request.progress_id) as job:
            comparison = compare_methods(
                model,
                request.text,
                methods=request.methods,
                granularity=request.granularity,
                target=request.target,
                query=request.query,
                trace=trace_of(model, request.text, "auto", job),
                progress=job,
                **cast(dict[str, Any], request.options),
            )
        answer = contracts.agreement_json(comparison)
        if request.dp_epsilon is not None:  # noised before it is returned
            from attnscope.governance.dp_methods import privatize_methods

            answer = privatize_methods(
                "agreement", answer, request.dp_epsilon, mechanism=request.dp_mechanism, delta=request.dp_delta
            )
        return answer

    @api.post("/heads", summary="Metrics and a type label for every layer x head (`heads --json`)")
    def heads_route(request: HeadsRequest) -> dict[str, Any]:
        from attnscope.methods.heads import measure_heads

        model = host.current()
        with host.running(request.progress_id) as job:
            trace = trace_of(model, request.text, request.backend, job)
            report = measure_heads(
                model, trace, threshold=request.threshold, stack=request.stack, backend=request.backend, progress=job
            )
        return contracts.heads_json(report)

    @api.post(
        "/parts", summary="Attention mass from a query region to each named part, per layer and head (`parts --json`)"
    )
    def parts_route(request: PartsRequest) -> dict[str, Any]:
        from attnscope.analysis.parts import part_attention

        model = host.current()
        with host.running(request.progress_id) as job:
            trace = trace_of(model, request.text, request.backend, job)
        parts = [Part(p.name, p.start, p.end) for p in request.parts]
        names, mass = part_attention(trace, parts, query=request.query)
        return contracts.parts_json(trace, parts, names, mass, request.query if request.query is not None else -1)

    @api.post("/compare", summary="Prompts side by side; for two, the attention difference (`compare --json`)")
    def compare_route(request: CompareRequest) -> dict[str, Any]:
        from attnscope.analysis.compare import compare_prompts

        model = host.current()
        with host.running(request.progress_id) as job:
            traces = [trace_of(model, text, "auto", job) for text in request.texts]
        summaries, difference, view = compare_prompts(
            traces, granularity=cast(Granularity, request.granularity), layer=request.layer, head=request.head
        )
        return contracts.comparison_json(traces, summaries, difference, view)

    return api
