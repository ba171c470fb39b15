"""The analysis JSON shared by ``attnscope analyze --json`` and the server's ``/api/analyze``.

Shape (stable; other tools depend on it)::

    {"model": {"spec", "name", "kind", "layers", "heads", "kv_heads", "vocab_size", "tokenizer",
               "weights_sha256", ...},
     "text": str,
     "tokens": [{"index", "id", "text", "start", "end", "special"}],
     "attention": {"layer", "head", "query", "stack", "weights": [one float per key token]},
     "prediction": {"position", "top": [{"id", "token", "prob"}]} | null,
     "stats": {"raw": RowStats, "without_special": RowStats},
     "provenance": {...}}

Weights and probabilities are raw softmax values (no rescaling).
"""

from __future__ import annotations

from typing import Any

from attnscope.analysis.stats import row_stats, without_special
from attnscope.capture.trace import Trace
from attnscope.errors import OutOfRangeError


def resolve_query(trace: Trace, query: int, stack: str | None = None) -> int:
    n_query = len(trace.query_tokens(stack))
    if isinstance(query, bool) or not -n_query <= int(query) < n_query:
        raise OutOfRangeError(f"query {query} out of range: {n_query} query tokens (0..{n_query - 1})")
    return int(query) % n_query


def analysis_json(
    trace: Trace,
    *,
    layer: int = -1,
    head: int | str = "mean",
    query: int = -1,
    top_k: int = 10,
    stack: str | None = None,
) -> dict[str, Any]:
    stack_name = stack or trace.default_stack
    layer_index = trace.resolve_layer(layer, stack_name)
    query_index = resolve_query(trace, query, stack_name)
    weights = trace.attention(layer_index, head, rows=[query_index], stack=stack_name)
    row = weights[0] if weights.ndim == 2 else weights.mean(axis=0)[0]
    prediction = None
    if trace.predictions is not None:
        prediction = {
            "position": query_index,
            "top": [c.to_dict() for c in trace.top_predictions(query_index, top_k)],
        }
    result: dict[str, Any] = {
        "model": trace.model,
        "text": trace.text,
        "tokens": [t.to_dict() for t in trace.tokens],
        "attention": {
            "layer": layer_index,
            "head": head if isinstance(head, str) else trace.resolve_heads(head, stack_name)[0],
            "query": query_index,
            "stack": stack_name,
            "weights": [float(w) for w in row],
        },
        "prediction": prediction,
        "stats": {
            "raw": row_stats(row).to_dict(),
            "without_special": row_stats(
                without_special(row, [t.special for t in trace.key_tokens(stack_name)])
            ).to_dict(),
        },
        "provenance": trace.provenance,
    }
    if trace.target_tokens is not None:
        result["target_tokens"] = [t.to_dict() for t in trace.target_tokens]
    if trace.parts:
        result["parts"] = [p.to_dict() for p in trace.parts]
    return result
