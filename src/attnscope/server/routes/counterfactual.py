"""``POST /api/counterfactual``: a text and its edited twin side by side (``counterfactual --json``).

The edits (and the swap table) are resolved on the text before the model runs, so an edit whose
text is missing, overlapping edits or a text left empty are refused at once (400); both texts are
bounded by ``INTERACTIVE_MAX_TOKENS`` (the attribution runs the model again on each). The answer is
:func:`attnscope.render.counterfactual.counterfactual_answer`'s JSON, kept as a run of kind
``counterfactual`` (masked like every stored run).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from attnscope.analysis.edits import apply_edits
from attnscope.server.host import ModelHost
from attnscope.server.routes.analysis import check_interactive
from attnscope.server.routes.runs import keep
from attnscope.server.schemas_counterfactual import CounterfactualRequest


def router(host: ModelHost) -> APIRouter:
    api = APIRouter(prefix="/api", tags=["analysis"])

    @api.post(
        "/counterfactual",
        summary="A text and its edited twin side by side (`counterfactual --json`)",
    )
    def counterfactual_route(request: CounterfactualRequest) -> dict[str, Any]:
        from attnscope.methods.counterfactual import collect_edits
        from attnscope.render.counterfactual import counterfactual_answer

        model = host.current()
        edits = request.edit_dicts()
        edited = apply_edits(request.text, collect_edits(request.text, edits, request.swap))  # refusals first
        check_interactive(model, request.text, "a counterfactual")
        check_interactive(model, edited.text, "a counterfactual")
        with host.running(request.progress_id) as job:
            answer = counterfactual_answer(
                model,
                request.text,
                edits,
                swap=request.swap,
                layer=request.layer,
                head=request.head,
                query=request.query,
                method=request.method,
                top_k=request.top_k,
                top_heads=request.top_heads,
                progress=job,
            )
        return keep(host, "counterfactual", request.text, answer)

    return api
