"""JSON contracts of the attention graph and the information-flow Sankey (``graph --json``, ``GET
/api/traces/{id}/graph`` and ``/sankey``): the same object from the CLI and the HTTP API.

``attention_graph``: ``edges`` (heaviest first) as ``{"query", "key", "weight"}``; ``query_nodes`` and
``key_nodes``: the tokens the edges start from and end at (index, text, character span, special flag;
the same token list but for cross-attention, whose keys are the source's tokens); ``above_threshold``:
how many edges were over the threshold, of which ``len(edges)`` (at most ``max_edges``) are given.

``flow_sankey``: ``tokens`` (the chosen ones) and one "other" group, in that order (``groups``);
``values[b][g]``: the share of the prediction held by group ``g`` at boundary ``b`` (0: the input,
``layers``: after the last layer); ``links[l][above][below]``: what layer ``l`` carries from group
``below`` at boundary ``l`` to group ``above`` at boundary ``l + 1`` (see
:mod:`attnscope.analysis.sankey` for the definitions and the conservation they obey).
"""

from __future__ import annotations

import json
from typing import Any

from attnscope.analysis.graph import AttentionGraph
from attnscope.analysis.sankey import FlowSankey
from attnscope.capture.trace import Trace
from attnscope.contracts import SCHEMA_VERSION, plain
from attnscope.errors import OutOfRangeError
from attnscope.governance.provenance import seal
from attnscope.render.palette import fmt, fmt_prob


def _head(result: str, trace: Trace) -> dict[str, Any]:
    model = trace.model
    return {"schema_version": SCHEMA_VERSION, "result": result, "model": None if model is None else model.to_dict()}


def graph_json(trace: Trace, graph: AttentionGraph) -> dict[str, Any]:
    """The attention graph of one layer (see the module docstring)."""
    queries, keys = trace.query_tokens(graph.view.stack), trace.key_tokens(graph.view.stack)
    view = graph.view.to_json()
    view.pop("query")
    view["label"] = view["label"].rsplit(", query", 1)[0]
    answer = {
        **_head("attention_graph", trace),
        "view": view,
        "threshold": graph.threshold,
        "max_edges": graph.max_edges,
        "n_tokens": graph.n_tokens,
        "above_threshold": graph.above_threshold,
        "shown": len(graph.weights),
        "query_nodes": [queries[i].to_dict() for i in graph.query_nodes],
        "key_nodes": [keys[i].to_dict() for i in graph.key_nodes],
        "edges": [
            {"query": int(q), "key": int(k), "weight": float(w)}
            for q, k, w in zip(graph.queries, graph.keys, graph.weights, strict=True)
        ],
        "provenance": trace.provenance,
    }
    return seal(plain(answer))


def sankey_json(trace: Trace, sankey: FlowSankey) -> dict[str, Any]:
    """The information-flow Sankey (see the module docstring)."""
    tokens = trace.query_tokens(sankey.stack)
    try:
        top = trace.top_predictions(sankey.target, 1)
        prediction = top[0].to_dict() if top else None
    except OutOfRangeError:  # no next-token head (an encoder), or no prediction kept at this position
        prediction = None
    answer = {
        **_head("flow_sankey", trace),
        "view": {"stack": sankey.stack, "head": sankey.head, "residual": sankey.residual},
        "query": sankey.target,
        "prediction": prediction,
        "n_tokens": sankey.n_tokens,
        "layers": int(sankey.links.shape[0]),
        "tokens": [tokens[i].to_dict() for i in sankey.tokens],
        "other": sankey.n_tokens - len(sankey.tokens),
        "rollout": [float(sankey.shares[0, i]) for i in sankey.tokens],
        "values": sankey.values,
        "links": sankey.links,
        "provenance": trace.provenance,
    }
    return seal(plain(answer))


def _token(token: dict[str, Any]) -> str:
    return f"{token['index']} {json.dumps(token['text'], ensure_ascii=False)}"


def graph_text(body: dict[str, Any]) -> str:
    """``attnscope graph`` without ``--json``: the kept edges, heaviest first."""
    queries = {node["index"]: _token(node) for node in body["query_nodes"]}
    keys = {node["index"]: _token(node) for node in body["key_nodes"]}
    lines = [
        f"attention graph: {body['view']['label']}, weight >= {fmt(body['threshold'])}: "
        f"{body['shown']} of {body['above_threshold']} edges shown ({body['n_tokens']} tokens)"
    ]
    for edge in body["edges"]:
        weight = edge["weight"]
        lines.append(f"  {queries[edge['query']]} -> {keys[edge['key']]}  {fmt(weight)} ({fmt_prob(weight)})")
    return "\n".join(lines)


def sankey_text(body: dict[str, Any]) -> str:
    """``attnscope sankey`` without ``--json``: each group's share of the prediction at every boundary."""
    names = [_token(token) for token in body["tokens"]] + [f"other ({body['other']} tokens)"]
    width = max(len(name) for name in names)
    boundaries = range(body["layers"] + 1)
    predicted = body["prediction"]
    to = (
        f" -> {json.dumps(predicted['token'], ensure_ascii=False)} ({fmt_prob(predicted['prob'])})" if predicted else ""
    )
    lines = [
        f"information flow (rollout, {body['view']['head']} of heads, residual {fmt(body['view']['residual'])}) "
        f"into position {body['query']}{to}; share of the prediction at each layer boundary:",
        " " * (width + 2) + " ".join(f"{b:>7}" for b in boundaries),
    ]
    for group, name in enumerate(names):
        row = " ".join(f"{fmt(body['values'][b][group]):>7}" for b in boundaries)
        lines.append(f"  {name:<{width}} {row}")
    return "\n".join(lines)
