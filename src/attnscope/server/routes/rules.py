"""Rules over HTTP (``attnscope rules``): the shipped examples, a rule file explained line by line,
and a rule file checked on a text — its capture (the trace ``/api/analyze`` caches, so a check after
an analysis does not run the model again), a generation after it, or a generation the server keeps.

A check stores what it read as a run (an analysis or a generation, as the answering routes do) and
logs every result in the runs store's rule log under that run (:mod:`attnscope.store.rule_log`: token
texts masked there as the run masks them); ``GET /api/runs/{id}/rules`` reads the log back. The answer
to the page is :func:`attnscope.render.rules.rules_json` with the text as given and the personal-data
spans (``pii``) the page masks tokens with, as every other answer has them.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from attnscope.analysis.rule_file import example_names, example_text
from attnscope.capture.engine import capture
from attnscope.capture.trace import GenerationTrace, Trace
from attnscope.contracts import SCHEMA_VERSION
from attnscope.errors import UnsupportedError
from attnscope.models.loaded import LoadedModel
from attnscope.progress import Job
from attnscope.render.json import analysis_json, generation_json, pii_json
from attnscope.server.host import ModelHost
from attnscope.server.routes.analysis import check_interactive
from attnscope.server.routes.analyze import TRACE_TOP_K
from attnscope.server.routes.runs import keep
from attnscope.server.schemas import RunId
from attnscope.server.schemas_audit import RulesCheckRequest, RulesValidateRequest, rule_problems


def _trace(host: ModelHost, model: LoadedModel, request: RulesCheckRequest, job: Job | None) -> tuple[str, Trace]:
    """(trace id, trace) the rules read: a kept trace, a new generation, or the text's cached capture."""
    if request.trace_id is not None:
        return request.trace_id, host.kept_trace(model, request.trace_id, request.text)
    messages = None
    if request.chat:
        system = [] if request.system is None else [{"role": "system", "content": request.system}]
        messages = [*system, {"role": "user", "content": request.text}]
    if request.generate is not None:
        from attnscope.capture.generation import generate

        settings = request.generate
        generated = generate(
            model,
            None if messages else request.text,
            messages=messages,
            max_new_tokens=settings.max_new_tokens,
            do_sample=settings.do_sample,
            temperature=settings.temperature,
            top_p=settings.top_p,
            top_k=settings.sample_top_k,
            seed=settings.seed,
            num_beams=settings.num_beams,
            stop=settings.stop,
            candidates=TRACE_TOP_K,
            progress=job,
        )
        return host.add_trace(model, generated), generated
    if messages is not None:  # a chat's rendered text is not the request's: not the analyses' cache
        chat = capture(model, None, messages=messages, top_k=TRACE_TOP_K, progress=job)
        return host.add_trace(model, chat), chat
    return host.trace_for(
        model, request.text, "auto", lambda chosen: capture(chosen, request.text, top_k=TRACE_TOP_K, progress=job)
    )


def _stored(host: ModelHost, trace: Trace, request: RulesCheckRequest) -> str | None:
    """The id of the run that keeps what the rules read (None when the server keeps no runs)."""
    if isinstance(trace, GenerationTrace):
        answer = generation_json(trace, layer=request.layer, head=request.head, stack=request.stack)
        kept = keep(host, "generation", answer["prompt"]["text"], answer)
    else:
        answer = analysis_json(trace, layer=request.layer, head=request.head, query=request.query, stack=request.stack)
        kept = keep(host, "analysis", trace.text, answer)
    return kept.get("run_id")


def router(host: ModelHost) -> APIRouter:
    api = APIRouter(prefix="/api", tags=["rules"])

    @api.get("/rules/examples", summary="The example rule files shipped with attnscope: [{name, text}]")
    def examples() -> list[dict[str, str]]:
        return [{"name": name, "text": example_text(name)} for name in example_names()]

    @api.post("/rules/validate", summary="A rule file's problems, each with its line (`rules validate --json`)")
    def validate(request: RulesValidateRequest) -> dict[str, Any]:
        rule_set, problems = rule_problems(request.rules)
        return {
            "schema_version": SCHEMA_VERSION,
            "result": "rules-validation",
            "ok": not problems,
            "sha256": None if rule_set is None else rule_set.sha256,
            "rules": [] if rule_set is None else [rule.to_json() for rule in rule_set.rules],
            "problems": [{"path": p.path, "line": p.line, "message": p.message} for p in problems],
        }

    @api.post(
        "/rules/check",
        summary="Check a rule file on a text or a generation (`rules check --json`); logged in the runs store",
    )
    def check(request: RulesCheckRequest) -> dict[str, Any]:
        from attnscope.capture.tokens import Part
        from attnscope.governance.rules import check_rules
        from attnscope.render.rules import rules_json
        from attnscope.store.rule_log import log_rules

        model = host.current()
        if model.kind == "seq2seq":
            raise UnsupportedError(
                f"{model.spec} is an encoder-decoder: rules read decoder-only and encoder models "
                "(encoder-decoders are not supported yet)"
            )
        rule_set = request.rule_set
        if any(rule.measure == "attribution" for rule in rule_set.rules):
            check_interactive(model, request.text, "an attribution rule")  # the method runs once per row
        with host.running(request.progress_id) as job:
            trace_id, trace = _trace(host, model, request, job)
            parts = [Part(p.name, p.start, p.end) for p in request.parts] or None
            report = check_rules(model, trace, rule_set, parts=parts)
        body = rules_json(report)
        run_id = _stored(host, trace, request)
        logged = 0
        if host.store is not None:
            logged = log_rules(host.store, rule_set.sha256, body["results"], run_id=run_id)
        return {**body, "pii": pii_json(trace.text), "trace_id": trace_id, "run_id": run_id, "logged": logged}

    @api.get("/runs/{run_id}/rules", tags=["runs"], summary="The rule log of one stored run, newest first")
    def run_rules(run_id: RunId) -> dict[str, Any]:
        from attnscope.errors import InputError
        from attnscope.store.rule_log import rule_log

        if host.store is None:
            raise InputError("this server keeps no runs (it was started with --no-store)")
        host.store.get(run_id)  # 404 for a run that is not stored
        return {
            "schema_version": SCHEMA_VERSION,
            "result": "rule-log",
            "run_id": run_id,
            "rows": rule_log(host.store, run_id=run_id),
        }

    return api
