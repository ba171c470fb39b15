"""The JSON contracts of the head atlas and the joint query–key projection (``attnscope atlas --json``,
``POST /api/atlas``, ``POST /api/qk-projection``); coordinates are rounded to 6 significant digits."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from attnscope.analysis.atlas import ATLAS_GRID
from attnscope.analysis.heads import METRICS, metric_titles
from attnscope.contracts import SCHEMA_VERSION
from attnscope.governance.provenance import seal

if TYPE_CHECKING:
    import numpy as np

    from attnscope.analysis.atlas import Projection
    from attnscope.methods.atlas import HeadAtlas, QKProjection

FEATURES = (
    f"each head's whole map mean-pooled to at most {ATLAS_GRID}x{ATLAS_GRID} cells, flattened, centred per column "
    f"and divided by the square root of the block's total variance; plus its metrics ({', '.join(METRICS)}), "
    "each z-scored over the heads (constant columns 0) and divided by sqrt(6)"
)
QK_TRANSFORM = (
    "per head: q and k times sqrt(scaling) (dot products are the scores), q times s and k divided by s "
    "(s^2 = mean key distance / mean query distance from their centroids), then keys translated onto the "
    "queries' centroid; attention weights are unchanged"
)


def _round(values: np.ndarray) -> list[list[float]]:
    return [[float(f"{v:.6g}") for v in row] for row in values.tolist()]


def _projection(shown: Projection) -> dict[str, Any]:
    return {"method": shown.method, "explained_variance": shown.explained, **shown.params}


def atlas_json(atlas: HeadAtlas) -> dict[str, Any]:
    """The head atlas: ``points[i]`` is head ``heads[i]`` of layer ``layers[i]`` with ``labels[i]``."""
    trace = atlas.trace
    answer = {
        "schema_version": SCHEMA_VERSION,
        "result": "head-atlas",
        "model": trace.model.to_dict(),
        "text": trace.text,
        "n_tokens": len(trace.tokens),
        "stack": atlas.stack,
        "projection": _projection(atlas.projection),
        "features": FEATURES,
        "grid": atlas.grid,
        "pooled_tokens": atlas.factor,
        "sampled_rows": atlas.sampled_rows,
        "points": _round(atlas.projection.coords),
        "layers": atlas.layers,
        "heads": atlas.heads,
        "labels": atlas.labels,
        "metrics": atlas.metrics,
        "titles": {name: metric_titles(_threshold(atlas))[name] for name in METRICS},
        "provenance": atlas.provenance or trace.provenance,
    }
    return seal(answer)


def _threshold(atlas: HeadAtlas) -> float:
    return float((atlas.provenance.get("method_options") or {}).get("threshold", 0.01))


def qk_projection_json(result: QKProjection) -> dict[str, Any]:
    """One layer's queries and keys: ``points[i]`` is a query (``kinds[i] == "q"``) or key of the token
    at ``positions[i]`` seen by head ``point_heads[i]``; ``tokens`` are the trace's token texts."""
    trace = result.trace
    answer = {
        "schema_version": SCHEMA_VERSION,
        "result": "qk-projection",
        "model": trace.model.to_dict(),
        "text": trace.text,
        "tokens": [t.text for t in trace.query_tokens(result.stack)],
        "stack": result.stack,
        "layer": result.layer,
        "heads": result.heads,
        "projection": _projection(result.projection),
        "transform": QK_TRANSFORM,
        "scales": [float(f"{s:.6g}") for s in result.scales],
        "exact": result.exact,
        "total_points": result.total,
        "kept_points": len(result.kinds),  # at most max_points
        "max_points": result.limit,
        "subsampled": len(result.kinds) < result.total,
        "points": _round(result.projection.coords),
        "kinds": ["q" if kind == 0 else "k" for kind in result.kinds.tolist()],
        "positions": result.positions.tolist(),
        "point_heads": result.point_heads.tolist(),
        "provenance": result.provenance or trace.provenance,
    }
    return seal(answer)
