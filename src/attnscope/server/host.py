"""The server's state: the loaded model (switchable without restart) and recent traces.

One model is shared by all requests; ``capture`` serialises forward passes with the model's lock.
Traces are cached by (model fingerprint, backend, text) so that changing layer, head or query
re-reads the same forward pass instead of running a new one, and no trace of one model is ever
answered for another. Long jobs are registered by the id their request names: their progress is
streamed (``/api/progress/{id}``) and they can be cancelled (``/api/jobs/{id}/cancel``).
"""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from attnscope.capture.selection import HeadSelector
from attnscope.capture.tiles import TileCache, TilePyramid
from attnscope.capture.trace import Trace
from attnscope.errors import AttnscopeError, ModelLoadError, NotFoundError
from attnscope.models.loaded import LoadedModel
from attnscope.progress import Job

MAX_JOBS = 256  # finished and abandoned job states kept for late readers

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
    _jobs: dict[str, Job] = field(default_factory=dict)

    def load(self, spec: str) -> LoadedModel:
        """Load ``spec`` and make it current; the previous model serves until the new one is ready.
        Whatever happens, the status leaves ``loading``: a failed load keeps the previous model."""
        with self._switch:
            self.status, self.message = "loading", f"loading {spec}"
            try:
                model = self.loader(spec)
            except Exception as error:
                failure = (
                    error if isinstance(error, AttnscopeError) else ModelLoadError(f"could not load {spec!r}: {error}")
                )
                self.status, self.message = ("ready" if self.model else "failed"), str(failure)
                if failure is error:
                    raise
                raise failure from error
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
        key = (model.fingerprint, backend, text)
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
            raise NotFoundError(f"unknown or expired trace id {trace_id!r}; analyse the text again")
        return trace

    def pyramid(self, trace_id: str, layer: int, head: HeadSelector, stack: str | None) -> TilePyramid:
        """The tile pyramid of one map of a cached trace (tiles shared through ``self.tiles``)."""
        trace = self.get_trace(trace_id)
        return TilePyramid(trace, layer, head, stack=stack, cache=self.tiles, key=trace_id)

    # --- jobs: progress of running requests (server-sent events) and cancellation ---------------
    def job(self, job_id: str | None) -> Job | None:
        """The job of a request that named ``job_id`` (None when it named none). A job cancelled
        before it started stays cancelled: its first progress report stops it."""
        if not job_id:
            return None
        with self._lock:
            found = self._jobs.get(job_id)
            if found is None or found.finished:
                cancelled = found is not None and found.cancelled and not found.finished
                found = self._jobs[job_id] = Job(cancelled=cancelled)
            while len(self._jobs) > MAX_JOBS:
                self._jobs.pop(next(iter(self._jobs)))
        return found

    def finish(self, job: Job | None) -> None:
        if job is not None:
            job.finished = True

    @contextmanager
    def running(self, job_id: str | None) -> Iterator[Job | None]:
        """The job of a request for the time it runs (None when the request named none)."""
        job = self.job(job_id)
        try:
            yield job
        finally:
            self.finish(job)

    def job_state(self, job_id: str) -> dict[str, Any]:
        with self._lock:
            found = self._jobs.get(job_id)
        return found.state() if found is not None else dict(Job().state())

    def cancel(self, job_id: str) -> dict[str, Any]:
        """Ask the job to stop at its next progress report (registered ahead if it has not started)."""
        with self._lock:
            found = self._jobs.get(job_id)
            if found is None:
                found = self._jobs[job_id] = Job()
        found.cancel()
        return found.state()

    def forget_job(self, job_id: str) -> None:
        with self._lock:
            self._jobs.pop(job_id, None)

    def info(self) -> dict[str, Any]:
        model = self.model
        return {"status": self.status, "message": self.message, "model": model.info().to_dict() if model else None}
