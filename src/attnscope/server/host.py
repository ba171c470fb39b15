"""The server's state: the loaded model (switchable without restart) and recent traces.

One model is shared by all requests; ``capture`` serialises forward passes with the model's lock.
Traces are cached by (model, text, backend) so that changing layer, head or query re-reads the
same forward pass instead of running a new one.
"""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from attnscope.capture.tiles import TileCache, TilePyramid
from attnscope.capture.trace import HeadSelector, Trace
from attnscope.errors import AttnscopeError, OutOfRangeError
from attnscope.models.loaded import LoadedModel

Loader = Callable[[str], LoadedModel]


@dataclass
class ModelHost:
    loader: Loader
    max_traces: int = 16
    model: LoadedModel | None = None
    status: str = "idle"  # idle | loading | ready | failed
    message: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _switch: threading.Lock = field(default_factory=threading.Lock)
    _traces: OrderedDict[str, Trace] = field(default_factory=OrderedDict)
    _keys: dict[tuple[str, str, str], str] = field(default_factory=dict)
    tiles: TileCache = field(default_factory=TileCache)  # heatmap tiles of every trace, LRU in bytes
    _progress: dict[str, dict[str, Any]] = field(default_factory=dict)

    def load(self, spec: str) -> LoadedModel:
        """Load ``spec`` and make it current; the previous model serves until the new one is ready."""
        with self._switch:
            self.status, self.message = "loading", f"loading {spec}"
            try:
                model = self.loader(spec)
            except AttnscopeError as error:
                self.status, self.message = ("ready" if self.model else "failed"), str(error)
                raise
            with self._lock:
                self.model = model
                self._traces.clear()
                self._keys.clear()
            self.status, self.message = "ready", f"{spec} loaded"
            return model

    def current(self) -> LoadedModel:
        model = self.model
        if model is None:
            raise AttnscopeError(f"no model is loaded ({self.message or self.status})")
        return model

    def trace_for(self, text: str, backend: str, make: Callable[[LoadedModel], Trace]) -> tuple[str, Trace]:
        model = self.current()
        key = (model.spec, backend, text)
        with self._lock:
            trace_id = self._keys.get(key)
            if trace_id is not None and trace_id in self._traces:
                self._traces.move_to_end(trace_id)
                return trace_id, self._traces[trace_id]
        trace = make(model)  # outside the lock: other requests keep being served
        with self._lock:
            trace_id = uuid.uuid4().hex[:16]
            self._traces[trace_id] = trace
            self._keys[key] = trace_id
            while len(self._traces) > self.max_traces:
                old_id, _ = self._traces.popitem(last=False)
                self._keys = {k: v for k, v in self._keys.items() if v != old_id}
        return trace_id, trace

    def get_trace(self, trace_id: str) -> Trace:
        with self._lock:
            trace = self._traces.get(trace_id)
        if trace is None:
            raise OutOfRangeError(f"unknown or expired trace id {trace_id!r}; analyse the text again")
        return trace

    def pyramid(self, trace_id: str, layer: int, head: HeadSelector, stack: str | None) -> TilePyramid:
        """The tile pyramid of one map of a cached trace (tiles shared through ``self.tiles``)."""
        trace = self.get_trace(trace_id)
        return TilePyramid(trace, layer, head, stack=stack, cache=self.tiles, key=trace_id)

    # --- progress of running analyses (read by the server-sent events route) ---------------------
    def progress_reporter(self, progress_id: str | None) -> Callable[[int, int], None] | None:
        if not progress_id:
            return None
        with self._lock:
            self._progress[progress_id] = {"done": 0, "total": 0, "finished": False}
            while len(self._progress) > 256:  # abandoned ids
                self._progress.pop(next(iter(self._progress)))

        def report(done: int, total: int) -> None:
            with self._lock:
                self._progress[progress_id] = {"done": done, "total": total, "finished": False}

        return report

    def finish_progress(self, progress_id: str | None) -> None:
        if progress_id:
            with self._lock:
                state = self._progress.get(progress_id, {"done": 0, "total": 0})
                self._progress[progress_id] = {**state, "finished": True}

    def progress_state(self, progress_id: str) -> dict[str, Any]:
        with self._lock:
            return dict(self._progress.get(progress_id, {"done": 0, "total": 0, "finished": False}))

    def forget_progress(self, progress_id: str) -> None:
        with self._lock:
            self._progress.pop(progress_id, None)

    def info(self) -> dict[str, Any]:
        model = self.model
        return {"status": self.status, "message": self.message, "model": model.info() if model else None}
