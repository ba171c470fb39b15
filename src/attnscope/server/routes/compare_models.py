"""``POST /api/compare/models``: the loaded model (A) against a second model (B) on one text.

The server holds one model for everything else (:class:`attnscope.server.host.ModelHost`); a
comparison needs a second one. :class:`SecondModel` is that slot: one model at a time, loaded on
demand by the host's loader (an adapter merged over it by :func:`attnscope.models.adapters.with_adapter`),
kept while the same B is asked for again, and released before another is loaded. "The same B" is
its identity recomputed on every request (:func:`second_identity`): a path's resolved folder and the
SHA-256 of its files (an adapter's config and weights, a model folder's config and weights), so an
adapter re-saved at the same path, or another adapter at another path, is loaded afresh. A request
holds the slot's lock from loading B until its answer is built, so B is never released under a
running comparison, and comparisons with a second model run one at a time; a failed load leaves the
slot empty (never a half-built model).
The answer is the ``attnscope compare TEXT --model A --model B --json`` contract
(:func:`attnscope.render.json.model_comparison_json`).
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

from fastapi import APIRouter

from attnscope.analysis.units import Granularity
from attnscope.capture.engine import capture
from attnscope.errors import AttnscopeError, ModelLoadError
from attnscope.models.loaded import LoadedModel
from attnscope.render import json as contracts
from attnscope.server.host import ModelHost
from attnscope.server.routes.analysis import check_interactive
from attnscope.server.routes.analyze import TRACE_TOP_K
from attnscope.server.schemas_compare import ModelCompareRequest


def second_identity(spec: str) -> str:
    """What makes B the same B: for a model folder its resolved path and the SHA-256 of its
    ``config.json`` and ``.safetensors`` files, for a file (.gguf) its path and SHA-256, else the spec
    itself (a catalog alias or hub id names fixed weights; ``tiny:`` models are built the same).
    Recomputed on every request: the hash index answers unchanged files from their (size, mtime)."""
    from attnscope.models.cache import files_sha256

    path = Path(spec).expanduser()
    if path.is_dir():
        files = sorted(path.glob("*.safetensors")) + (
            [path / "config.json"] if (path / "config.json").is_file() else []
        )
        return f"{path.resolve()}@{files_sha256(files) if files else ''}"
    if path.is_file():
        return f"{path.resolve()}@{files_sha256([path])}"
    return spec


def _release_memory() -> None:
    """Return a released B's memory: Python's cycles, then CUDA's cached blocks."""
    gc.collect()
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


class SecondModel:
    """The comparison's model B: one at a time, loaded on demand, released when another is asked for."""

    def __init__(self, loader: Callable[[str], LoadedModel]) -> None:
        self.loader = loader
        self.key: tuple[str, str, str] | None = None
        self.model: LoadedModel | None = None
        self._lock = threading.Lock()

    def get(self, first: LoadedModel, spec: str | None, adapter: str | None) -> LoadedModel:
        """B for model A ``first``: ``spec`` (None or A's own spec: A itself) with ``adapter`` over it."""
        with self._lock:
            return self._get(first, spec, adapter)

    @contextlib.contextmanager
    def use(self, first: LoadedModel, spec: str | None, adapter: str | None) -> Iterator[LoadedModel]:
        """:meth:`get`, holding the slot until the block ends (no other B replaces it meanwhile)."""
        with self._lock:
            yield self._get(first, spec, adapter)

    def _get(self, first: LoadedModel, spec: str | None, adapter: str | None) -> LoadedModel:
        same_base = spec is None or spec == first.spec
        if same_base and adapter is None:
            return first  # A against itself: nothing to load
        adapter_key = ""
        if adapter is not None:
            from attnscope.models.adapters import adapter_sha256

            adapter_key = f"{Path(adapter).expanduser().resolve()}@{adapter_sha256(adapter)}"
        key = ("" if same_base else second_identity(str(spec)), adapter_key, first.fingerprint if same_base else "")
        if self.key == key and self.model is not None:
            return self.model
        if self.model is not None:  # the previous B goes before the next one loads
            self.key, self.model = None, None
            _release_memory()
        try:
            base = first if same_base else self.loader(str(spec))
            if adapter is not None:
                from attnscope.models.adapters import with_adapter

                base = with_adapter(base, adapter)
        except AttnscopeError:
            raise
        except Exception as error:
            raise ModelLoadError(f"could not load {spec or first.spec!r}: {error}") from error
        self.key, self.model = key, base
        return base


def router(host: ModelHost) -> APIRouter:
    api = APIRouter(prefix="/api", tags=["analysis"])
    second = SecondModel(host.loader)

    @api.post(
        "/compare/models",
        summary="The loaded model against a second model or an adapter on one text (`compare -m A -m B --json`)",
    )
    def compare_models_route(request: ModelCompareRequest) -> dict[str, Any]:
        from attnscope.methods.compare_models import check_pair

        first = host.current()
        check_interactive(first, request.text, "a model comparison")
        with second.use(first, request.model, request.adapter) as other:
            check_interactive(other, request.text, "a model comparison")
            check_pair(first, other, request.method)  # before either model captures
            return _compare(first, other, request)

    def _compare(first: LoadedModel, other: LoadedModel, request: ModelCompareRequest) -> dict[str, Any]:
        from attnscope.methods.compare_models import compare_two_models

        with host.running(request.progress_id) as job:

            def make(model: LoadedModel) -> Any:
                return capture(model, request.text, top_k=TRACE_TOP_K, progress=job)

            traces = (
                host.trace_for(first, request.text, "auto", make)[1],
                host.trace_for(other, request.text, "auto", make)[1],
            )
            comparison = compare_two_models(
                first,
                other,
                request.text,
                granularity=cast(Granularity, request.granularity),
                method=request.method,
                layers=request.layers,
                top_k=request.top_k,
                traces=traces,
                progress=job,
            )
        return contracts.model_comparison_json(comparison)

    return api
