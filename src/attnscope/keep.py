"""``attnscope.keep``: store a library result as a run, as ``--store`` does for the CLI and the
server does for every answer. The result becomes its JSON contract (the view given for a trace),
personal data is masked by ``pii_policy``, and the run lands in the runs store of the data folder
(``ATTNSCOPE_HOME``) or of ``folder``::

    trace = attnscope.capture(model, text)
    run_id = attnscope.keep(trace, layer=-1, head="mean")
    run_id = attnscope.keep(attnscope.attribute(model, text, "grad-x-input"), text=text)
    run_id = attnscope.keep(attnscope.generate(model, text, max_new_tokens=32))

The public entry points take the same as a keyword — ``attnscope.capture(model, text, store=True)``,
``attnscope.generate(..., store=True)``, ``attnscope.attribute(..., store=True)`` (or a folder
instead of True) — and put the run's id in the result's ``provenance["run_id"]``. They are the
wrappers below: the capture and method functions themselves sit below the store in the package's
layers and know nothing of it.
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


def _kept(result: Any, store: bool | str | Path, text: str | None = None) -> Any:
    """``result``, stored as a run when ``store`` asks (True: the data folder's store; a path: that
    folder's), its provenance record then naming the run (``run_id``)."""
    if store is False or store is None:
        return result
    if not isinstance(store, bool | str | Path):
        from attnscope.errors import InputError

        raise InputError(f"store= is True, False or a folder, not {type(store).__name__}")
    folder = None if store is True else Path(store)
    run_id = keep(result, text=text, folder=folder)
    if run_id is not None and isinstance(getattr(result, "provenance", None), dict):
        result.provenance["run_id"] = run_id
    return result


def generate(*args: Any, store: bool | str | Path = False, **kwargs: Any) -> Any:
    """``attnscope.generate``: :func:`attnscope.capture.generation.generate`, and with ``store=True``
    (or a folder) the generation kept as a run (its ``provenance["run_id"]``)."""
    from attnscope.capture.generation import generate as run

    return _kept(run(*args, **kwargs), store)


def attribute(*args: Any, store: bool | str | Path = False, **kwargs: Any) -> Any:
    """``attnscope.attribute``: :func:`attnscope.methods.run.attribute`, and with ``store=True`` (or a
    folder) the attribution kept as a run (its ``provenance["run_id"]``)."""
    from attnscope.methods.run import attribute as run

    text = args[1] if len(args) > 1 else kwargs.get("text")
    return _kept(run(*args, **kwargs), store, text=text if isinstance(text, str) else None)


class CaptureEntry:
    """``attnscope.capture``: the capture subpackage (every name of it reads through), and called,
    :func:`attnscope.capture.engine.capture` with ``store=True`` (or a folder) keeping the trace as a
    run (its ``provenance["run_id"]``)."""

    def __call__(self, *args: Any, store: bool | str | Path = False, **kwargs: Any) -> Any:
        from attnscope.capture.engine import capture

        return _kept(capture(*args, **kwargs), store)

    def __getattr__(self, name: str) -> Any:
        from importlib import import_module

        return getattr(import_module("attnscope.capture"), name)

    def __dir__(self) -> list[str]:
        from importlib import import_module

        return dir(import_module("attnscope.capture"))

    def __repr__(self) -> str:
        return "<attnscope.capture: call it to capture a trace (store=True keeps it as a run)>"
