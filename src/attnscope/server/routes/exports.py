"""``POST /api/export``: one view as a publication figure (PNG, SVG, PDF) or its numbers (CSV, JSON),
or a trace as one offline HTML file — the bytes of ``attnscope export``, drawn by
:func:`attnscope.render.exports.build.export` from a trace the server holds, a stored run, or the
JSON answer the page already has. Personal data is masked by the server's ``--pii-policy``, as for
``/api/report`` (``drop``: refused when there is any). A malformed answer is a 422 with one line."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from attnscope.errors import AttnscopeError, InputError
from attnscope.server.host import ModelHost
from attnscope.server.schemas_export import ExportRequest


class AnswerError(InputError):
    """The answer given cannot be drawn by the view asked for."""

    code = "bad_answer"
    status = 422


def _options(request: ExportRequest, policy: str) -> Any:
    from attnscope.render.exports.frame import ExportOptions

    return ExportOptions(
        layer=request.layer, head=request.head, query=request.query, method=request.method,
        method_options=dict(request.method_options), stack=request.stack, granularity=request.granularity,
        language=request.language, title=request.title, metric=request.metric, pii_policy=policy,
    )  # fmt: skip


def _same_model(host: ModelHost, fingerprint: str) -> Any:
    """The loaded model when it is the one ``fingerprint`` names (else None: it is not run)."""
    try:
        model = host.current()
    except AttnscopeError:
        return None
    return model if model.fingerprint == fingerprint else None


def router(host: ModelHost) -> APIRouter:
    api = APIRouter(prefix="/api", tags=["export"])

    @api.post("/export", summary="A view as PNG/SVG/PDF (matplotlib), its numbers as CSV/JSON, or a trace as HTML")
    def export_view(request: ExportRequest) -> Response:
        from attnscope.render.exports.build import export
        from attnscope.render.exports.registry import check_format, view

        chosen = view(request.view)
        check_format(request.format, chosen)
        options = _options(request, host.pii_policy)
        source: str
        if request.trace_id is not None:
            trace = host.get_trace(request.trace_id)
            model = _same_model(host, trace.model.fingerprint)
            done = export(chosen.name, request.format, options, trace=trace, model=model)
            source = request.trace_id
        elif request.run_id is not None:
            from attnscope.render.exports.sources import recapture

            if host.store is None:
                raise InputError("this server keeps no runs (it was started with --no-store)")
            run = host.store.get(request.run_id)
            answer = host.store.result(run)
            if request.format != "html" and chosen.reads_answer(answer):
                done = export(chosen.name, request.format, options, answer=answer, masked=True)
            else:
                model = _same_model(host, run.model_fingerprint)
                if model is None:
                    raise InputError(
                        f"run {run.id} needs its attention captured again on {run.model_spec} "
                        f"(fingerprint {run.model_fingerprint[:12]}); load that model first"
                    )
                model, trace = recapture(run, answer, model=model)
                done = export(chosen.name, request.format, options, trace=trace, model=model)
            source = run.id
        else:
            assert request.answer is not None
            try:
                done = export(chosen.name, request.format, options, answer=request.answer, text=request.text)
            except AnswerError:
                raise
            except InputError as error:
                raise AnswerError(str(error)) from None
            except (KeyError, TypeError, ValueError, IndexError, AttributeError) as error:
                raise AnswerError(
                    f"the answer is not a well-formed answer for the {chosen.name} view ({type(error).__name__})"
                ) from None
            source = str(request.answer.get("result", "answer"))[:40]
        safe = "".join(c if c.isalnum() or c in "-_" else "-" for c in source)
        name = f"attnscope-{chosen.name}-{safe}.{done.suffix}"
        return Response(
            done.data, media_type=done.media_type, headers={"Content-Disposition": f'attachment; filename="{name}"'}
        )

    return api
