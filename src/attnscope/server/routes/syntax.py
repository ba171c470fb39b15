"""``POST /api/syntax``: the text's dependency parse and the heads that track each relation
(``attnscope syntax --json``).

The text's length comes first (texts are bounded by ``INTERACTIVE_MAX_TOKENS``, which also bounds
the parse's work), then the parse — spaCy or jieba as installed, or the CoNLL-U the request carries —
so a missing parser (400, code ``parser_missing``, with the install command) or a CoNLL-U whose words
do not spell the text is refused before the model runs. The trace is the page's cached one of the same
text (full or qk, whichever ``auto`` chose).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter
from pydantic import Field, StringConstraints

from attnscope.analysis.parsers import MAX_CONLLU_CHARS
from attnscope.capture.engine import capture
from attnscope.models.loaded import LoadedModel
from attnscope.server.host import ModelHost
from attnscope.server.routes.analysis import check_interactive
from attnscope.server.routes.analyze import TRACE_TOP_K
from attnscope.server.schemas import HasJob, HasText


class SyntaxRequest(HasText, HasJob):
    parser: Literal["auto", "spacy", "jieba", "conllu"] = Field(
        "auto", description="auto: the CoNLL-U when given, else spaCy for the text's language, else jieba (Chinese)"
    )
    conllu: Annotated[str, StringConstraints(max_length=MAX_CONLLU_CHARS)] | None = Field(
        None, description="a CoNLL-U parse of the text (its words must spell the text, in order)"
    )


def router(host: ModelHost) -> APIRouter:
    api = APIRouter(prefix="/api", tags=["analysis"])

    @api.post("/syntax", summary="Dependency relations and the heads that track them (`syntax --json`)")
    def syntax_route(request: SyntaxRequest) -> dict[str, Any]:
        from attnscope.analysis.parsers import parse_text
        from attnscope.render.syntax import syntax_json

        model = host.current()
        check_interactive(model, request.text, "syntax")  # the length first: it bounds the parse's work too
        parse = parse_text(request.text, request.parser, conllu=request.conllu)  # refusals before the model runs
        with host.running(request.progress_id) as job:

            def make(chosen: LoadedModel) -> Any:
                return capture(chosen, request.text, backend="auto", top_k=TRACE_TOP_K, progress=job)

            trace = host.trace_for(model, request.text, "auto", make)[1]
            return syntax_json(trace, parse, progress=job)

    return api
