"""The head atlas: every head of a model as one point, and the 2-D projections it is drawn with.

Feature matrix (one row per captured (layer, head), rows in layer-major order):

1. the head's whole attention map **mean-pooled** to at most ``ATLAS_GRID × ATLAS_GRID`` cells
   (:func:`attnscope.capture.overview.pooled_maps` with ``pool="mean"``: blocks of ``f × f`` tokens,
   ``f = ceil(N / ATLAS_GRID)``, each cell the mean weight of its block), flattened row-major:
   ``c = cells_q · cells_k`` columns;
2. its head metrics (:data:`attnscope.analysis.heads.METRICS`, in that order: entropy, sparsity,
   locality, sink, previous_token, focus_consistency): ``m = 6`` columns.

Standardisation, so that each block brings a total variance of 1 whatever the map's size:

- the map block is centred per column (mean over the heads) and divided by the square root of its
  total variance (the sum of its columns' population variances): ``Z_map = (M − mean) / sqrt(Σ var)``.
  One divisor for the whole block keeps cells that barely vary (e.g. a block on the causal diagonal,
  whose mean is the same for every head) at their own small scale instead of blowing float noise up;
- each metric column is z-scored, ``(x − mean) / std`` (population std; a constant column becomes
  0), then the block is divided by ``sqrt(m)``: ``Z_metrics = z(T) / sqrt(m)``.

``X = [Z_map, Z_metrics]``, shape (heads, c + m).

Projections of ``X`` to 2-D: ``pca`` (centred SVD, computed here with numpy; each component's
sign fixed so that its largest-magnitude loading is positive; explained variance ratios given),
``tsne`` (scikit-learn's ``TSNE``, ``init="pca"``, ``learning_rate="auto"``) and ``umap``
(umap-learn's ``UMAP``; the first UMAP in a process waits ~20–30 s for numba to compile); both are
deterministic for a given seed (t-SNE starts from the PCA layout, so its seed changes little).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from attnscope.analysis.heads import METRICS
from attnscope.errors import InputError

PROJECTIONS = ("pca", "tsne", "umap")
ATLAS_GRID = 16  # the pooled map of each head: at most 16 × 16 cells
DEFAULT_PERPLEXITY = 30.0
DEFAULT_NEIGHBORS = 15
MAX_SEED = 2**32  # numpy's RandomState (scikit-learn, umap-learn) takes seeds below this


@dataclass(frozen=True)
class Projection:
    coords: np.ndarray  # (points, 2) float64
    method: str
    explained: list[float] | None = None  # PCA: the share of variance of components 1 and 2
    params: dict[str, Any] = field(default_factory=dict)  # seed, perplexity, n_neighbors as used


def standardise(columns: np.ndarray) -> np.ndarray:
    """(rows, cols) -> each column ``(x − mean) / std`` over the rows; a constant column gives 0."""
    values = np.asarray(columns, dtype=np.float64)
    centred = values - values.mean(axis=0)
    std = values.std(axis=0)
    return np.divide(centred, std, out=np.zeros_like(centred), where=std > 1e-12)


def head_features(maps: np.ndarray, metrics: dict[str, np.ndarray]) -> np.ndarray:
    """The documented feature matrix ``X`` (heads, c + m) from (heads, cells_q, cells_k) pooled maps
    and ``{metric: (heads,)}`` (module docstring)."""
    flat = np.asarray(maps, dtype=np.float64).reshape(len(maps), -1)  # (heads, c)
    table = np.stack([np.asarray(metrics[name], dtype=np.float64) for name in METRICS], axis=1)  # (heads, m)
    if not np.isfinite(table).all():
        raise InputError("head metrics are missing for some heads (layers not captured?)")
    centred = flat - flat.mean(axis=0)
    total = math.sqrt(float((centred**2).mean(axis=0).sum()))  # sqrt of the sum of the column variances
    block = centred / total if total > 0 else centred
    return np.concatenate([block, standardise(table) / math.sqrt(table.shape[1])], axis=1)


def pca(features: np.ndarray, components: int = 2) -> tuple[np.ndarray, list[float]]:
    """(points, components) principal component scores of centred ``features`` and each component's
    explained variance ratio; signs fixed (largest-magnitude loading positive). Fewer points or
    dimensions than ``components``: the missing components are 0."""
    values = np.asarray(features, dtype=np.float64)
    centred = values - values.mean(axis=0)
    _, singular, vt = np.linalg.svd(centred, full_matrices=False)
    signs = np.sign(vt[np.arange(len(vt)), np.abs(vt).argmax(axis=1)])
    vt = vt * np.where(signs == 0, 1, signs)[:, None]
    scores = centred @ vt.T  # (points, k)
    variance = singular**2
    total = float(variance.sum())
    ratios = [float(v / total) if total > 0 else 0.0 for v in variance[:components]]
    out = np.zeros((len(values), components))
    kept = min(components, scores.shape[1])
    out[:, :kept] = scores[:, :kept]
    return out, ratios + [0.0] * (components - len(ratios))


def check_seed(seed: object) -> int:
    """``seed`` when scikit-learn and umap-learn take it (an integer from 0 to 2**32 − 1), else a refusal."""
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or not 0 <= int(seed) < MAX_SEED:
        raise InputError(f"the seed must be an integer from 0 to {MAX_SEED - 1}; got {seed!r}")
    return int(seed)


def check_projection(method: str, points: int, perplexity: float | None, n_neighbors: int | None) -> dict[str, Any]:
    """The parameters ``method`` will use for ``points`` points, or a one-line refusal."""
    if method not in PROJECTIONS:
        raise InputError(f"unknown projection {method!r}; use one of {', '.join(PROJECTIONS)}")
    if method == "pca":
        if points < 2:
            raise InputError(f"PCA needs at least 2 points, not {points}")
        return {}
    if method == "tsne":
        if points < 4:
            raise InputError(f"t-SNE needs at least 4 points, not {points}")
        chosen = min(DEFAULT_PERPLEXITY, (points - 1) / 3) if perplexity is None else float(perplexity)
        if not 0 < chosen < points:
            raise InputError(
                f"t-SNE perplexity must be above 0 and below the number of points ({points}); got {chosen:g}"
            )
        return {"perplexity": chosen}
    if points < 4:
        raise InputError(f"UMAP needs at least 4 points, not {points}")
    neighbours = min(DEFAULT_NEIGHBORS, points - 1) if n_neighbors is None else int(n_neighbors)
    if not 2 <= neighbours < points:
        raise InputError(
            f"UMAP n_neighbors must be from 2 to {points - 1} (below the number of points); got {neighbours}"
        )
    return {"n_neighbors": neighbours}


def project(
    features: np.ndarray,
    method: str = "pca",
    *,
    seed: int = 0,
    perplexity: float | None = None,
    n_neighbors: int | None = None,
) -> Projection:
    """(points, dims) -> 2-D coordinates by ``pca``, ``tsne`` or ``umap`` (module docstring)."""
    values = np.asarray(features, dtype=np.float64)
    seed = check_seed(seed)
    params = check_projection(method, len(values), perplexity, n_neighbors)
    if method == "pca":
        coords, explained = pca(values)
        return Projection(coords, method, explained, params)
    params["seed"] = seed
    if method == "tsne":
        from sklearn.manifold import TSNE

        tsne = TSNE(
            n_components=2, perplexity=params["perplexity"], init="pca", learning_rate="auto", random_state=seed
        )
        return Projection(np.asarray(tsne.fit_transform(values), dtype=np.float64), method, None, params)
    with warnings.catch_warnings():  # umap warns that a seed turns parallelism off: that is the point
        warnings.simplefilter("ignore")
        import umap

        # spectral initialisation needs a connected graph of enough points; tiny sets start at random
        init = "spectral" if len(values) > params["n_neighbors"] + 2 else "random"
        reducer = umap.UMAP(n_components=2, n_neighbors=params["n_neighbors"], random_state=seed, init=init)
        coords = np.asarray(reducer.fit_transform(values), dtype=np.float64)
    return Projection(coords, method, None, params)
