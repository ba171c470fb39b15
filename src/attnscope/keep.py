"""``attnscope.keep``: store a library result as a run, as ``--store`` does for the CLI and the
server does for every answer. The result becomes its JSON contract (the view given for a trace),
personal data is masked by ``pii_policy``, and the run lands in the runs store of the data folder
(``ATTNSCOPE_HOME``) or of ``folder``::

    trace = attnscope.capture(model, text)
    run_id = attnscope.keep(trace, layer=-1, head="mean")
    run_id = attnscope.keep(attnscope.attribute(model, text, "grad-x-input"), text=text)
    run_id = attnscope.keep(attnscope.generate(model, text, max_new_tokens=32))

(The capture and generation functions sit below the store in the package's layers, so storing is
this one call after them rather than a keyword of theirs.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def keep(
    result: Any,
    *,
    text: str | None = None,
    layer: object = -1,
    head: object = "mean",
    query: object = -1,
    stack: str | None = None,
    pii_policy: str = "mask",
    folder: Path | None = None,
) -> str | None:
    """Store ``result`` — a ``Trace`` (its analysis at ``layer``/``head``/``query``/``stack``), a
    ``GenerationTrace`` or an attribution (``text``: the text it explains) — and return the run's id
    (None when ``pii_policy="drop"`` found personal data: nothing is stored)."""
    from attnscope.capture.trace import GenerationTrace, Trace
    from attnscope.errors import InputError
    from attnscope.governance.privacy import PiiFoundError
    from attnscope.methods.run import Attribution
    from attnscope.render.json import analysis_json, attribution_json, generation_json
    from attnscope.store.runs import RunsStore

    method = None
    if isinstance(result, GenerationTrace):
        kind, answer = "generation", generation_json(result, layer=layer, head=head, stack=stack)
        text = answer["prompt"]["text"]
    elif isinstance(result, Trace):
        kind = "analysis"
        answer = analysis_json(result, layer=layer, head=head, query=query, stack=stack)
        text = result.text
    elif isinstance(result, Attribution):
        if text is None:
            raise InputError("keep(attribution): pass text= (the text the attribution explains)")
        import hashlib

        explained = result.provenance.get("text_sha256")
        if explained and hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest() != explained:
            raise InputError("keep(attribution): text= is not the text this attribution explains")
        kind, answer, method = "attribution", attribution_json(result), result.method
    else:
        raise InputError(f"keep() stores a Trace, a GenerationTrace or an attribution, not {type(result).__name__}")
    with RunsStore(folder) as store:
        try:
            run = store.put(
                kind=kind, text=text, model=answer.get("model") or {}, result=answer, origin="library",
                method=method, pii_policy=pii_policy,
            )  # fmt: skip
        except PiiFoundError:
            return None
    return run.id
