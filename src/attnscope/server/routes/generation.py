"""``POST /api/generate`` (the ``generate --json`` contract, tokens streamed as progress events) and
the steps' attention rows of a generation as one binary array."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import Response

from attnscope.capture.generation import generate
from attnscope.capture.trace import GenerationTrace
from attnscope.contracts import SCHEMA_VERSION
from attnscope.errors import InputError
from attnscope.methods.steps import step_attribution
from attnscope.render.json import check_view, generation_json, step_attribution_json, step_rows
from attnscope.server import binary
from attnscope.server.host import ModelHost
from attnscope.server.routes.analyze import TRACE_TOP_K
from attnscope.server.routes.runs import keep
from attnscope.server.schemas import GenerateRequest, StepAttributeRequest, StepsParams


def router(host: ModelHost) -> APIRouter:
    api = APIRouter(prefix="/api", tags=["generation"])

    @api.post("/generate", summary="Generate after a prompt and explain each step (`generate --json`)")
    def generate_route(request: GenerateRequest) -> dict[str, Any]:
        model = host.current()
        if model.kind != "masked":  # generate() refuses an encoder in its own words
            check_view(model, request.layer, request.head, request.stack)  # before minutes of generation
        with host.running(request.progress_id) as job:

            def stream(step: int, token_id: int, prob: float) -> None:
                if job is not None:  # a preview while it runs; the answer has the exact text and spans
                    text = model.tokenizer.decode([token_id], skip_special_tokens=False)
                    job.push({"step": step, "id": token_id, "text": text, "prob": prob})

            trace = generate(
                model,
                request.text,
                messages=None if request.messages is None else [m.model_dump() for m in request.messages],
                max_new_tokens=request.max_new_tokens,
                do_sample=request.do_sample,
                temperature=request.temperature,
                top_p=request.top_p,
                top_k=request.sample_top_k,
                seed=request.seed,
                num_beams=request.num_beams,
                stop=request.stop,
                candidates=TRACE_TOP_K,
                progress=job,
                on_token=stream,
            )
            trace_id = host.add_trace(model, trace)  # kept even if what follows is refused
            result = generation_json(
                trace, layer=request.layer, head=request.head, top_k=request.top_k, stack=request.stack
            )
            if request.attribute is not None:
                scored = step_attribution(model, trace, request.attribute, progress=job, **request.options)
                result["attribution"] = step_attribution_json(scored)
        # the prompt as the model read it (a chat: its rendered template)
        return {**keep(host, "generation", result["prompt"]["text"], result), "trace_id": trace_id}

    @api.post(
        "/traces/{trace_id}/attribute",
        summary="Per-step attribution of a generation: each step's scores of the tokens before it",
    )
    def attribute_steps(trace_id: str, request: StepAttributeRequest) -> dict[str, Any]:
        trace = host.get_trace(trace_id)
        if not isinstance(trace, GenerationTrace):
            raise InputError(f"trace {trace_id} is an analysis, not a generation: it has no steps")
        model = host.current()  # the model-running methods refuse a generation made with another model
        with host.running(request.progress_id) as job:
            scored = step_attribution(model, trace, request.method, progress=job, **request.options)
        return {"schema_version": SCHEMA_VERSION, "result": "step_attribution", **step_attribution_json(scored)}

    @api.get(
        "/traces/{trace_id}/steps",
        summary="Each step's attention row of a generation: float16 (steps, tokens), row s = query p_s - 1",
    )
    def steps(trace_id: str, params: Annotated[StepsParams, Query()]) -> Response:
        trace = host.get_trace(trace_id)
        if not isinstance(trace, GenerationTrace):
            raise InputError(f"trace {trace_id} is an analysis, not a generation: it has no steps")
        view, weights = step_rows(trace, layer=params.layer, head=params.head, stack=params.stack)
        return Response(
            binary.encode(
                weights,
                "float16",
                layer=view.layers[0],
                stack=view.stack,
                positions=[step.position for step in trace.steps],
            ),
            media_type="application/octet-stream",
        )

    return api
