"""One HTML file of a trace or a generation that opens from disk: the page's own views, no server.

:func:`standalone_html` (signature stable: ``attnscope export --format html``, ``POST /api/export``
and the notebook display call it) writes the web page's modules inline (:mod:`attnscope.render.bundle`)
with the trace's numbers embedded and compressed; ``web/standalone.js`` answers the page's requests
from them in the browser. What the file holds, richest first, the first that fits ``budget_bytes``:

- ``heads``: every layer × head's whole map, float16 (every layer, head and query works);
- ``layers``: every head's row at the kept queries (the last token; a generation's steps too),
  float16, plus each layer's mean-of-heads map, float16 — or, when that does not fit, 8 bits of each
  row's maximum (``round(w / max · 255)``, the row maxima as float32);
- ``rows``: every head's row at the kept queries only.

Always: the tokens, the top-``top_k`` predictions at every position, the head metrics (no induction
probe: that runs the model), the model view's thumbnails (32 cells, max and mean pooling), and the
provenance. Causal maps keep their lower triangle only. float16 arrays are byte-planed (low bytes,
then high bytes) before deflate, which roughly halves them; the whole payload is one zlib stream.
Controls that need what the file lacks (methods that run the model, another text, DP, another head's
map in the ``rows`` tier) answer, in the page's language, that they need ``attnscope serve``.

Personal data: the file leaves the process, so the same policy as a stored run applies
(:func:`attnscope.governance.masking.mask_answer`, ``mask`` by default): texts, tokens, candidates that
would continue a value, and the provenance record's masking fields.
"""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from attnscope.errors import InputError
from attnscope.home import write_atomic
from attnscope.render.language import LANGUAGES

if TYPE_CHECKING:
    from attnscope.capture.trace import Trace

DEFAULT_BUDGET = 5_000_000  # bytes of the whole file (README: ≤ 5 MB for 1,000 tokens of the default model)
OVER_ESTIMATE = 16  # a tier whose raw maps exceed 16 × the budget is not tried (deflate gives 2-5 × here)
THUMBNAIL_SIZE = 32  # the model view's default cells per thumbnail side
TIERS = ("heads", "layers", "layers-u8", "rows")
PRECISION = {"heads": "float16", "layers": "float16", "layers-u8": "uint8 of each row's maximum", "rows": "float16"}


def _f16(array: np.ndarray) -> bytes:
    """float16 little-endian, byte-planed: every low byte, then every high byte."""
    raw = np.ascontiguousarray(array, dtype="<f2").view(np.uint8).reshape(-1, 2)
    return raw.T.tobytes()


class _Payload:
    """[u32 meta length][meta JSON][arrays]: the layout ``standalone.js`` reads."""

    def __init__(self) -> None:
        self.arrays: dict[str, dict[str, Any]] = {}
        self.chunks: list[bytes] = []
        self.size = 0

    def add(self, name: str, data: bytes, dtype: str, shape: list[int], **extra: Any) -> None:
        self.arrays[name] = {"offset": self.size, "bytes": len(data), "dtype": dtype, "shape": shape, **extra}
        self.chunks.append(data)
        self.size += len(data)

    def pack(self, meta: dict[str, Any]) -> bytes:
        head = json.dumps({**meta, "arrays": self.arrays}, ensure_ascii=False, separators=(",", ":")).encode()
        return struct.pack("<I", len(head)) + head + b"".join(self.chunks)


def _lower(square: np.ndarray) -> np.ndarray:
    """(..., N, N) → (..., N(N+1)/2): row q keeps keys 0 … q (row-major)."""
    n = square.shape[-1]
    rows, cols = np.tril_indices(n)
    return square[..., rows, cols]


class _Trace:
    """What the file needs from one trace, read once: maps per layer, rows, thumbnails, answers."""

    def __init__(self, trace: Trace, top_k: int, pii_policy: str, budget: int = DEFAULT_BUDGET) -> None:
        from attnscope.capture.trace import GenerationTrace

        self.trace = trace
        self.stack = trace.default_stack
        self.layers = trace.captured_layers(self.stack)
        self.heads = trace.num_heads(self.stack)
        self.n = len(trace.key_tokens(self.stack))
        if len(trace.query_tokens(self.stack)) != self.n:
            raise InputError(
                f"a standalone file holds one self-attention stack; this {trace.kind} trace's default stack "
                f"({self.stack}) attends from other tokens than its keys: open it with attnscope serve"
            )
        self.generation = trace if isinstance(trace, GenerationTrace) and trace.steps else None
        steps = [step.position - 1 for step in self.generation.steps] if self.generation else []
        self.row_queries = sorted({*steps, self.n - 1})
        self.causal = trace.kind == "causal"  # a decoder-only LM: every map is lower-triangular
        self._means: list[np.ndarray] | None = None
        self.top_k = top_k
        self.policy = pii_policy
        self.budget = budget

    @property
    def means(self) -> list[np.ndarray]:
        """Each layer's mean-of-heads map, (N, N) float32, read once when a tier needs them."""
        if self._means is None:
            self._means = [self.trace.attention(layer, "mean", stack=self.stack) for layer in self.layers]
        return self._means

    def rows(self) -> np.ndarray:
        """(layers, heads, kept queries, keys): every head's row at ``row_queries``."""
        picked = [self.trace.attention(layer, None, rows=self.row_queries, stack=self.stack) for layer in self.layers]
        return np.stack(picked)

    def head_maps(self) -> bytes:
        maps = [self.trace.attention(layer, None, stack=self.stack) for layer in self.layers]  # (heads, N, N) each
        return _f16(np.stack([_lower(m) if self.causal else m for m in maps]))

    def mean_maps(self, dtype: str) -> tuple[bytes, np.ndarray | None]:
        means = np.stack(self.means)  # (layers, N, N)
        if dtype == "f16":
            return _f16(_lower(means) if self.causal else means), None
        scales = means.max(axis=-1).astype(np.float32)  # (layers, N) each row's maximum
        safe = np.where(scales > 0, scales, 1.0)[..., None]
        quantised = np.rint(means / safe * 255).astype(np.uint8)
        return (_lower(quantised) if self.causal else quantised).tobytes(), scales

    def estimate(self, tier: str) -> int:
        """Deflated bytes of the tier's maps, from the first layer's (the rest alike)."""
        if tier == "rows":
            return 0
        cells = self.n * (self.n + 1) // 2 if self.causal else self.n * self.n
        raw = len(self.layers) * cells * {"heads": 2 * self.heads, "layers": 2, "layers-u8": 1}[tier]
        if raw > OVER_ESTIMATE * self.budget:  # no need to read a map: deflate does not shrink it that much
            return raw
        first = self.trace.attention(self.layers[0], None, stack=self.stack) if tier == "heads" else self.means[0]
        if tier == "layers-u8":
            scale = np.where(first.max(-1, keepdims=True) > 0, first.max(-1, keepdims=True), 1.0)
            sample = np.rint(first / scale * 255).astype(np.uint8)
            data = (_lower(sample) if self.causal else sample).tobytes()
        else:
            data = _f16(_lower(first) if self.causal else first)
        return len(zlib.compress(data, 6)) * len(self.layers)


def _answers(source: _Trace) -> dict[str, Any]:
    """The JSON the page asks the server for, built by the same functions, personal data masked."""
    from attnscope.governance.masked_values import mask_candidates
    from attnscope.governance.masking import check_policy, mask_answer
    from attnscope.governance.privacy import MASKED_TOKEN_ID
    from attnscope.methods.catalogue import catalogue_json
    from attnscope.render.exports.frame import ExportOptions
    from attnscope.render.exports.metrics import answer_of
    from attnscope.render.json import _prediction, analysis_json, generation_json, model_status_json

    trace, stack, policy = source.trace, source.stack, check_policy(source.policy)
    base = analysis_json(trace, layer=-1, head="mean", query=-1, top_k=source.top_k, stack=stack)
    text, base, _ = mask_answer("analysis", trace.text, base, policy)
    if policy != "off":
        base["pii"] = []  # the text is masked already: nothing left for the page to hide
    tokens = base["tokens"]
    predictions: list[Any] = []
    if trace.predictions is not None:
        trace.predictions.ensure()  # every position, a chunk of rows per LM-head call (not one by one)
    for query in range(source.n):
        found = _prediction(trace, stack, query, source.top_k)
        if found is not None and policy != "off":
            near = [t for t in tokens[query : query + 2] if t.get("id") == MASKED_TOKEN_ID]
            if near:  # the query token or the next one is part of a value: its candidates continue it
                mask_candidates(found["top"], near[-1]["text"])
        predictions.append(found)
    # exact up to 2,048 query tokens, beyond from evenly spaced rows (``sampled_rows``), as the metrics
    # export: a 6,001-token trace's exact metrics kept an HTML export busy past 10 minutes on 2 CPUs
    heads = dict(answer_of(trace, ExportOptions(stack=stack, pii_policy="off")))
    _, heads, _ = mask_answer("heads", trace.text, heads, policy)
    heads["text"] = text
    labels = {
        str(layer): {
            str(head): trace.select(layer=layer, head=head, query=source.n - 1, stack=stack).label.replace(
                f"query {source.n - 1} (", "query {query} ("
            )
            for head in ["mean", "max", *range(source.heads)]
        }
        for layer in source.layers
    }
    meta: dict[str, Any] = {
        "base": {k: v for k, v in base.items() if k not in ("attention", "stats", "prediction")},
        "predictions": predictions,
        "labels": labels,
        "heads": heads,
        "model_status": model_status_json("ready", "", trace.model),
        "models": {"result": "models", "models": []},
        "methods": catalogue_json(),
        "texts": [text],
        "prompt": text,
        "generation": None,
    }
    if source.generation is not None:
        generation = generation_json(source.generation, top_k=source.top_k, stack=stack)
        _, generation, _ = mask_answer("generation", source.generation.prompt_text, generation, policy)
        if policy != "off":
            generation["pii"] = []
        meta["generation"] = generation
        meta["prompt"] = generation["prompt"]["text"]
        meta["texts"].append(generation["prompt"]["text"] + generation["generated"]["text"])
    return meta


def _payload(source: _Trace, tier: str, answers: dict[str, Any], thumbs: dict[str, Any]) -> bytes:
    payload = _Payload()
    rows = source.rows()
    payload.add("rows", _f16(rows), "f16", list(rows.shape), planed=True)
    packed = "lower" if source.causal else None
    n, layers = source.n, len(source.layers)
    if tier == "heads":
        payload.add("maps", source.head_maps(), "f16", [layers, source.heads, n, n], planed=True, packed=packed)
    elif tier in ("layers", "layers-u8"):
        data, scales = source.mean_maps("f16" if tier == "layers" else "u8")
        dtype = "f16" if scales is None else "u8"
        payload.add("maps", data, dtype, [layers, n, n], planed=scales is None, packed=packed)
        if scales is not None:
            payload.add("scales", scales.astype("<f4").tobytes(), "f32", list(scales.shape))
    for pool, maps in thumbs["maps"].items():
        payload.add(f"thumbs-{pool}", _f16(maps), "f16", list(maps.shape), planed=True)
    meta = {
        **answers,
        "tier": "layers" if tier == "layers-u8" else tier,
        "precision": PRECISION[tier],
        "stack": source.stack,
        "layers": source.layers,
        "heads_count": source.heads,
        "keys": n,
        "row_queries": source.row_queries,
        "thumbs": {"size": THUMBNAIL_SIZE, "header": thumbs["header"]},
    }
    return payload.pack(meta)


def _thumbnails(source: _Trace) -> dict[str, Any]:
    from attnscope.capture.overview import pooled_maps

    sampled = 4 if source.n > 2048 else None  # as GET /api/traces/{id}/model-view
    found = {pool: pooled_maps(source.trace, THUMBNAIL_SIZE, pool=pool, stack=source.stack, rows_per_block=sampled)
             for pool in ("max", "mean")}  # fmt: skip
    first = found["max"]
    header = {"layers": first.layers, "factor": first.factor, "tokens": list(first.shape),
              "rows_per_block": first.rows_per_block}  # fmt: skip
    return {"maps": {pool: maps.maps for pool, maps in found.items()}, "header": header}


def standalone_html(
    trace: Trace,
    *,
    language: str = "en",
    pii_policy: str = "mask",
    budget_bytes: int = DEFAULT_BUDGET,
    top_k: int = 10,
    content: str | None = None,
) -> bytes:
    """One offline HTML file (UTF-8 bytes) of ``trace`` (a ``Trace`` or ``GenerationTrace``).

    Stable signature (``attnscope export --format html``, ``POST /api/export``, ``Trace.show()``):

    Args:
        trace: what to show; a generation opens with its timeline.
        language: the page's language, ``en`` or ``zh-CN``.
        pii_policy: ``mask`` (default), ``hash``, ``drop`` (refused when there is personal data) or
            ``off``, as for a stored run.
        budget_bytes: the most the file may weigh; the richest content that fits is chosen (module
            docstring). A trace whose rows alone do not fit is refused (``InputError``).
        top_k: next-token candidates kept per position.
        content: one of :data:`TIERS` to hold exactly that (still within the budget); None: the
            richest that fits.

    Raises:
        InputError: not a trace, an unknown language or policy, a budget too small, ``drop`` with
            personal data in the text.
    """
    if isinstance(budget_bytes, bool) or not isinstance(budget_bytes, int) or budget_bytes < 100_000:
        raise InputError(f"budget_bytes must be an integer of at least 100000, not {budget_bytes!r}")
    if content is not None and content not in TIERS:
        raise InputError(f"unknown content {content!r}; one of {', '.join(TIERS)}")
    prepared = _prepare(trace, language, pii_policy, top_k, budget_bytes)
    smallest = 0
    for tier in TIERS if content is None else (content,):
        if tier != "rows" and content is None and prepared[0].estimate(tier) > budget_bytes:
            continue
        built = _build(prepared, tier, language)
        if len(built) <= budget_bytes:
            return built
        smallest = len(built)
    held = "the rows of the kept queries only" if content is None else f"content {content}"
    raise InputError(f"this trace needs {smallest:,} bytes with {held}; the budget is {budget_bytes:,} (raise it)")


def tier_size(trace: Trace, tier: str, *, language: str = "en", pii_policy: str = "mask", top_k: int = 10) -> int:
    """Bytes of the file of ``trace`` holding ``tier`` (:data:`TIERS`), whatever the budget (benchmarks)."""
    if tier not in TIERS:
        raise InputError(f"unknown content {tier!r}; one of {', '.join(TIERS)}")
    return len(_build(_prepare(trace, language, pii_policy, top_k), tier, language))


def _prepare(
    trace: Trace, language: str, pii_policy: str, top_k: int, budget: int = DEFAULT_BUDGET
) -> tuple[_Trace, dict[str, Any], dict[str, Any]]:
    """The checked inputs read once: the trace's arrays, the page's answers, the thumbnails."""
    from attnscope.capture.trace import Trace
    from attnscope.governance.privacy import PiiFoundError

    if not isinstance(trace, Trace):
        raise InputError(f"a standalone HTML file shows a Trace or a GenerationTrace, not {type(trace).__name__}")
    if language not in LANGUAGES:
        raise InputError(f"unknown language {language!r}; languages: {', '.join(LANGUAGES)}")
    if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= 100:
        raise InputError(f"top_k must be an integer from 1 to 100, not {top_k!r}")
    source = _Trace(trace, top_k, pii_policy, budget)
    try:
        answers = _answers(source)
    except PiiFoundError as error:
        raise InputError(f"no standalone file written (pii policy drop): {error}") from None
    return source, answers, _thumbnails(source)


def _build(prepared: tuple[_Trace, dict[str, Any], dict[str, Any]], tier: str, language: str) -> bytes:
    from attnscope.render.bundle import page

    source, answers, thumbs = prepared
    settings = {
        "title": f"attnscope — {source.trace.model.spec}",
        "language": language,
        "content": tier,
        "provenance": answers["base"].get("provenance"),
    }
    payload = _payload(source, tier, answers, thumbs)
    return page(payload=payload, settings=settings, prompt=answers["prompt"], language=language).encode("utf-8")


def write_standalone(trace: Trace, path: str | Path, **options: Any) -> Path:
    """Write :func:`standalone_html` of ``trace`` to ``path`` atomically (:func:`attnscope.home.write_atomic`):
    a refusal leaves nothing behind. Returns the path."""
    return write_atomic(Path(path), standalone_html(trace, **options))
