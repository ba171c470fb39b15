"""``POST /api/analyze`` and the jobs of long requests: progress as server-sent events, and cancellation."""

from __future__ import annotations

import asyncio
import json
from typing import Any, cast

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from attnscope.capture.engine import Backend, capture
from attnscope.governance.dp import privatize_answer
from attnscope.render.json import analysis_json, job_json
from attnscope.server.host import ModelHost
from attnscope.server.routes.runs import keep
from attnscope.server.schemas import AnalyzeRequest, JobId

PROGRESS_STREAM_SECONDS = 900
# Server traces keep this many next-token candidates (the route's maximum top_k), so that any top_k
# a later request on the same text asks for is answered from the cached forward pass.
TRACE_TOP_K = 100


def router(host: ModelHost) -> APIRouter:
    api = APIRouter(prefix="/api", tags=["analysis"])

    @api.post("/analyze", summary="Attention of one query token and the next-token prediction (`analyze --json`)")
    def analyze(request: AnalyzeRequest) -> dict[str, Any]:
        model = host.current()  # one model for the whole request, whatever switch comes meanwhile
        backend = cast(Backend, request.backend)
        with host.running(request.progress_id) as job:
            if request.trace_id is not None:
                trace_id, trace = request.trace_id, host.kept_trace(model, request.trace_id, request.text)
            else:
                trace_id, trace = host.trace_for(
                    model,
                    request.text,
                    backend,
                    lambda chosen: capture(chosen, request.text, backend=backend, top_k=TRACE_TOP_K, progress=job),
                )
        result = analysis_json(
            trace,
            layer=request.layer,
            head=request.head,
            query=request.query,
            top_k=request.top_k,
            stack=request.stack,
            # a run is kept whole; a noised answer is whole too (its stats need the tokens)
            include_tokens=request.include_tokens or host.store is not None or request.dp_epsilon is not None,
        )
        if request.dp_epsilon is not None:  # noised before it is stored or returned
            result = privatize_answer(
                "analysis", result, request.dp_epsilon, mechanism=request.dp_mechanism, delta=request.dp_delta
            )
        result = keep(host, "analysis", request.text, result)
        if not request.include_tokens:  # a layer/head/query change on the same text: the client has these
            for key in ("tokens", "target_tokens", "provenance", "pii"):  # kept in the stored run
                result.pop(key, None)
        if request.dp_epsilon is not None:  # the trace's exact arrays are not released under DP: no handle to them
            return result
        return {**result, "trace_id": trace_id}

    @api.get("/progress/{job_id}", summary="Server-sent events: the progress of the job a request named")
    async def progress_events(job_id: JobId) -> StreamingResponse:
        async def events() -> Any:
            last = None
            sent = 0  # streamed items (a generation's tokens) sent so far
            loop = asyncio.get_running_loop()
            deadline = loop.time() + PROGRESS_STREAM_SECONDS
            while loop.time() < deadline:
                state = host.job_state(job_id)
                items = host.job_items(job_id, sent)
                if state != last or items:
                    yield f"data: {json.dumps({**state, 'items': items}, ensure_ascii=False)}\n\n"
                    last = state
                    sent += len(items)
                if state.get("finished"):
                    host.forget_job(job_id)
                    return
                await asyncio.sleep(0.1)

        return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})

    @api.get("/jobs/{job_id}", summary="The state of the job a request named: done, total, stage, finished, cancelled")
    def job_state(job_id: JobId) -> dict[str, Any]:
        return job_json(job_id, host.job_state(job_id))

    @api.post("/jobs/{job_id}/cancel", summary="Cancel the job a request named (it stops at its next step)")
    def cancel(job_id: JobId) -> dict[str, Any]:
        return job_json(job_id, host.cancel(job_id))

    return api
