"""``POST /api/compare/models``: the loaded model (A) against a second model (B) on one text.

The server holds one model for everything else (:class:`attnscope.server.host.ModelHost`); a
comparison needs a second one. :class:`SecondModel` is that slot: one model at a time, loaded on
demand by the host's loader (an adapter merged over it by :func:`attnscope.models.adapters.with_adapter`),
kept while the same B is asked for again, and released before another is loaded. Loads are
serialised by the slot's lock, and a failed load leaves the slot empty (never a half-built model).
The answer is the ``attnscope compare TEXT --model A --model B --json`` contract
(:func:`attnscope.render.json.model_comparison_json`).
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Callable
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


class SecondModel:
    """The comparison's model B: one at a time, loaded on demand, released when another is asked for."""

    def __init__(self, loader: Callable[[str], LoadedModel]) -> None:
        self.loader = loader
        self.key: tuple[str, str, str] | None = None
        self.model: LoadedModel | None = None
        self._lock = threading.Lock()

    def get(self, first: LoadedModel, spec: str | None, adapter: str | None) -> LoadedModel:
        """B for model A ``first``: ``spec`` (None or A's own spec: A itself) with ``adapter`` over it."""
        same_base = spec is None or spec == first.spec
        if same_base and adapter is None:
            return first  # A against itself: nothing to load
        key = ("" if same_base else str(spec), adapter or "", first.fingerprint if same_base else "")
        with self._lock:
            if self.key == key and self.model is not None:
                return self.model
            self.key, self.model = None, None  # the previous B goes before the next one loads
            gc.collect()
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
        from attnscope.methods.compare_models import compare_two_models

        first = host.current()
        check_interactive(first, request.text, "a model comparison")
        other = second.get(first, request.model, request.adapter)
        check_interactive(other, request.text, "a model comparison")
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
