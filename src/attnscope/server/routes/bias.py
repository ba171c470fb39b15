"""Bias probes over HTTP (``attnscope bias``): the packaged suites, and one suite run through the
loaded model — :func:`attnscope.render.bias.bias_answer`'s JSON (``attnscope bias --json``), kept as
a run of kind ``bias`` whose text is the suite's name.

Only packaged suites are run (a name from ``GET /api/bias/suites``; the server reads no path a
request names). A model that is not a causal LM is refused (400 ``unsupported``) before anything
runs; the progress of a run (scoring, then attention, per variant) is published under its
``progress_id`` and it can be cancelled like every long request.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from attnscope.server.host import ModelHost
from attnscope.server.routes.runs import keep
from attnscope.server.schemas_bias import BiasRequest


def router(host: ModelHost) -> APIRouter:
    api = APIRouter(prefix="/api", tags=["analysis"])

    @api.get("/bias/suites", summary="The packaged bias probe suites (`bias --list --json`)")
    def suites() -> dict[str, Any]:
        from attnscope.methods.bias_suites import list_suites
        from attnscope.render.bias import suites_json

        return suites_json(list_suites())

    @api.post("/bias", summary="Run a packaged bias probe suite through the loaded model (`bias --json`)")
    def bias_route(request: BiasRequest) -> dict[str, Any]:
        from attnscope.attribution.targets import require_causal
        from attnscope.render.bias import bias_answer

        model = host.current()
        require_causal(model, "bias probes")  # refused before the job starts
        with host.running(request.progress_id) as job:
            answer = bias_answer(
                model,
                request.suite,
                resamples=request.resamples,
                seed=request.seed,
                confidence=request.confidence,
                top=request.top,
                progress=job,
            )
        return keep(host, "bias", request.suite, answer)

    return api
