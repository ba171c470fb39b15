"""``attnscope atlas``: every head of the model as a point (PCA, t-SNE or UMAP of its whole map and
metrics), or with ``--qk LAYER[:HEAD]`` one layer's queries and keys in AttentionViz's joint space."""

from __future__ import annotations

import argparse
from typing import Any

from attnscope.analysis.atlas import PROJECTIONS
from attnscope.capture.selection import STACKS
from attnscope.cli import common


def add(commands: argparse._SubParsersAction) -> None:
    command = commands.add_parser(
        "atlas",
        help="every head as a point (PCA, t-SNE, UMAP), or one layer's queries and keys in one space",
        description="Project every head of the model over TEXT to 2-D from its whole attention map (mean-pooled "
        "to at most 16x16) and its metrics, standardised (attnscope.analysis.atlas); with --qk LAYER[:HEAD], "
        "project that layer's post-rotary queries and keys together after AttentionViz's translation and "
        "scaling, which leave every attention weight unchanged (attnscope.analysis.qk_space).",
    )
    common.add_text(command)
    command.add_argument("--projection", choices=PROJECTIONS, default="pca", help="pca (default), tsne or umap")
    command.add_argument("--qk", default=None, metavar="LAYER[:HEAD]", help="queries and keys of one layer (all heads)")
    command.add_argument("--seed", type=int, default=0, help="t-SNE and UMAP seed (default 0)")
    command.add_argument("--perplexity", type=float, default=None, help="t-SNE (default min(30, (points-1)/3))")
    command.add_argument("--neighbors", type=int, default=None, help="UMAP n_neighbors (default min(15, points-1))")
    command.add_argument("--max-points", type=int, default=None, help="--qk: subsample beyond this many points")
    command.add_argument("--threshold", type=float, default=0.01, help="sparsity threshold (default 0.01)")
    command.add_argument("--stack", choices=STACKS, default=None)
    common.add_model_options(command, stash=True)
    common.add_output_options(command)
    command.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from attnscope.analysis.atlas import check_seed
    from attnscope.errors import InputError
    from attnscope.methods.atlas import parse_qk

    text = common.read_text(args.text, args.text_file)
    qk = parse_qk(args.qk) if args.qk is not None else None  # refused before the model loads
    check_seed(args.seed)
    if args.perplexity is not None and args.perplexity <= 0:
        raise InputError("--perplexity must be above 0")
    if args.neighbors is not None and args.neighbors < 2:
        raise InputError("UMAP n_neighbors must be 2 or more (--neighbors)")
    if not 0 < args.threshold < 1:
        raise InputError("--threshold must be between 0 and 1")
    model = common.load(args)
    from attnscope.capture import capture
    from attnscope.methods.atlas import head_atlas, qk_projection
    from attnscope.render.atlas_json import atlas_json, qk_projection_json

    options: dict[str, Any] = {
        "projection": args.projection,
        "seed": args.seed,
        "perplexity": args.perplexity,
        "n_neighbors": args.neighbors,
        "stack": args.stack,
    }
    capture_options = common.capture_options(args) | ({"backend": "qk"} if qk is not None else {})

    def job(bar: object) -> dict[str, Any]:
        trace = capture(model, text, predict="none", progress=bar, **capture_options)
        if qk is not None:
            return qk_projection_json(qk_projection(trace, qk[0], qk[1], max_points=args.max_points, **options))
        return atlas_json(head_atlas(trace, threshold=args.threshold, progress=bar, **options))

    body = common.run_job(args, job)
    return common.output(args, body, atlas_text)


def atlas_text(body: dict[str, Any]) -> str:
    """A table of the points (heads, or a summary of the query and key points)."""
    shown = body["projection"]
    explained = shown.get("explained_variance")
    axes = (
        f"component 1 ({explained[0]:.1%}), component 2 ({explained[1]:.1%})"
        if explained
        else "component 1, component 2"
    )
    if body["result"] == "qk-projection":
        kinds = body["kinds"]
        lines = [
            f"layer {body['layer']}, heads {', '.join(map(str, body['heads']))}: {kinds.count('q')} queries and "
            f"{kinds.count('k')} keys by {shown['method']} ({axes})"
            + (
                f"; {body['kept_points']:,} of {body['total_points']:,} points kept (at most {body['max_points']:,})"
                if body["subsampled"]
                else ""
            ),
            "kind  head  pos  token  x  y",
        ]
        for kind, head, position, (x, y) in zip(
            kinds, body["point_heads"], body["positions"], body["points"], strict=True
        ):
            lines.append(f"{kind}  {head}  {position}  {body['tokens'][position]!r}  {x:.3g}  {y:.3g}")
        return "\n".join(lines)
    lines = [f"{len(body['points'])} heads by {shown['method']} ({axes})", "layer  head  label  x  y"]
    for layer, head, label, (x, y) in zip(body["layers"], body["heads"], body["labels"], body["points"], strict=True):
        lines.append(f"{layer}  {head}  {label}  {x:.3g}  {y:.3g}")
    return "\n".join(lines)
