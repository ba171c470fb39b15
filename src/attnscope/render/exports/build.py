"""One export, whatever it is drawn from: :func:`export` gives the bytes, media type and file suffix of
a view of a trace or of a JSON answer, in one format; the CLI (``attnscope export``) and the server
(``POST /api/export``) both call it.

- a trace view of a trace: drawn from the trace; the token view with ``options.method`` runs that
  method first (:func:`attnscope.methods.run.attribute`; attention methods need no model, the
  others need ``model``) and shows its scores; head metrics with a ``model`` add the induction probe;
- an answer view (or the token view of an ``attribution`` answer, head metrics of a ``heads``
  answer): drawn from the answer, personal data masked first by ``options.pii_policy``
  (:func:`mask_for_export`) unless the caller says it is masked already (a stored run is);
- ``html``: the whole trace as one offline file (:func:`attnscope.render.standalone.standalone_html`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from attnscope.errors import InputError
from attnscope.render.exports.frame import MEDIA_TYPES, ExportOptions
from attnscope.render.exports.registry import check_format, render, view

if TYPE_CHECKING:
    from attnscope.capture.trace import Trace
    from attnscope.models.loaded import LoadedModel

_KNOWN_KINDS = ("analysis", "attribution", "report", "generation", "counterfactual")  # mask_answer's structures


@dataclass(frozen=True)
class Exported:
    data: bytes
    media_type: str
    suffix: str  # the file name's extension, without the dot


def mask_for_export(answer: Mapping[str, Any], policy: str, text: str | None = None) -> dict[str, Any]:
    """``answer`` with personal data masked by ``policy`` as a stored run is (``drop`` with personal
    data: refused, one line): the structure-aware masking of its kind (tokens spelling a value
    together), then every other string of it (labels, notes), its model and provenance blocks
    excepted (hashes and names)."""
    from attnscope.governance.masking import check_policy, mask_answer
    from attnscope.governance.privacy import PiiFoundError, mask_strings

    check_policy(policy)
    body = dict(answer)
    if policy == "off":
        return body
    kind = str(body.get("result", ""))
    source = text if text is not None else body.get("text") if isinstance(body.get("text"), str) else None
    if source is None:  # an attribution answer holds no text: its units spell it at their spans
        source = _spanned_text(body)
    try:
        if kind in _KNOWN_KINDS:
            _, body, _ = mask_answer(kind, str(source), body, policy)
        elif isinstance(body.get("units"), list):  # agreement, compare-models: units spell a value together
            _, body, _ = mask_answer("attribution", str(source), body, policy)
        elif policy == "drop":
            mask_answer("analysis", str(source), {"text": source}, "drop")
        kept = {key: body.pop(key) for key in ("model", "provenance") if key in body}
        strings = mask_strings(body, policy)  # type: ignore[arg-type]
        if policy == "drop" and strings != body:
            raise PiiFoundError("the answer holds personal data")
    except PiiFoundError as error:
        raise InputError(f"nothing exported (personal-data policy drop): {error}") from None
    return {**strings, **kept}


def _spanned_text(answer: Mapping[str, Any], limit: int = 2_000_000) -> str:
    """The text an answer's units (else tokens) spell at their character spans, blanks between them
    ("" when they carry no spans): what its personal data is found in when it holds no ``text``."""
    pieces = answer.get("units") if isinstance(answer.get("units"), list) else answer.get("tokens")
    spans: list[tuple[int, int, str]] = []
    for piece in pieces if isinstance(pieces, list) else []:
        if not isinstance(piece, Mapping) or not isinstance(piece.get("text"), str):
            continue
        start, end, shown = piece.get("start"), piece.get("end"), piece["text"]
        if type(start) is int and type(end) is int and 0 <= start <= end <= limit and len(shown) == end - start:
            spans.append((start, end, shown))
    chars = [" "] * max((end for _, end, _ in spans), default=0)
    for start, end, piece in spans:
        chars[start:end] = piece
    return "".join(chars)


def _attribution(trace: Trace, options: ExportOptions, model: LoadedModel | None) -> dict[str, Any]:
    """The token view's method scores on ``trace`` (the method's JSON answer)."""
    from attnscope.methods import catalogue
    from attnscope.methods.run import attribute
    from attnscope.render.json import attribution_json

    method = str(options.method)
    if method not in catalogue.attribution_names():
        raise InputError(f"unknown method {method!r}; token methods: {', '.join(catalogue.attribution_names())}")
    spec = catalogue.get(method)
    if model is None and "model" in getattr(spec, "needs", ()):
        raise InputError(
            f"{method} runs the model again: export it where the model is loaded, or use attention, rollout or flow"
        )
    result = attribute(
        model, trace.text, method, granularity=options.granularity, query=options.query, trace=trace,
        **dict(options.method_options),
    )  # fmt: skip
    return attribution_json(result)


def export(
    name: str,
    form: str,
    options: ExportOptions,
    *,
    trace: Trace | None = None,
    answer: Mapping[str, Any] | None = None,
    model: LoadedModel | None = None,
    text: str | None = None,
    masked: bool = False,
) -> Exported:
    """View ``name`` as ``form`` (png, svg, pdf, csv, json, html) from ``trace`` or ``answer`` (one of
    them); ``text``: the answer's text when it does not carry it (for masking); ``masked``: the
    answer's personal data is masked already (a stored run)."""
    chosen = view(name)
    check_format(form, chosen)
    if (trace is None) == (answer is None):
        raise InputError("an export is drawn from a trace or from an answer (one of them)")
    if form == "html":
        if trace is None:
            raise InputError(
                "the HTML export is of a whole trace or generation: give a trace (or a run with one), not an answer"
            )
        from attnscope.render.standalone import standalone_html

        html = standalone_html(trace, language=options.language, pii_policy=options.pii_policy)
        return Exported(html, MEDIA_TYPES["html"], "html")
    data: Any
    if answer is not None:
        chosen.check(answer)  # its kind, before masking walks its fields
        try:
            data = answer if masked else mask_for_export(answer, options.pii_policy, text)
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as error:
            raise InputError(
                f"the answer is not a well-formed {name} answer ({type(error).__name__}: {error})"
            ) from None
        chosen.check(data)
    elif name == "tokens" and options.method not in (None, "", "attention"):
        assert trace is not None
        data = mask_for_export(_attribution(trace, options, model), options.pii_policy, trace.text)
    elif name == "metrics" and model is not None:
        from attnscope.methods.heads import measure_heads
        from attnscope.render.json import heads_json

        assert trace is not None
        data = heads_json(measure_heads(model, trace, stack=options.stack))
    else:
        if chosen.needs == "answer":
            raise InputError(f"the {name} view is drawn from a {', '.join(chosen.answer_kinds)} answer, not a trace")
        data = trace
    if name == "tokens" and options.method == "attention":
        options = replace(options, method=None)
    return Exported(render(name, data, form, options), MEDIA_TYPES[form], form)
