"""The server's state: the loaded model (switchable without restart) and recent traces.

One model is shared by all requests; ``capture`` serialises forward passes with the model's lock.
Traces are cached by (model fingerprint, backend, text) so that changing layer, head or query
re-reads the same forward pass instead of running a new one, and no trace of one model is ever
answered for another. A request reads the current model once (:meth:`ModelHost.current`) and uses
that model for everything it does (:meth:`ModelHost.trace_for` takes it explicitly): a switch in the
middle of a request never mixes two models in one answer. Long jobs are registered by the id their
request names: their progress is streamed (``/api/progress/{id}``) and they can be cancelled
(``/api/jobs/{id}/cancel``); at most ``MAX_JOBS`` job states are kept.
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
from attnscope.errors import AttnscopeError, InputError, ModelLoadError, NotFoundError
from attnscope.models.loaded import LoadedModel
from attnscope.progress import Job
from attnscope.store.runs import RunsStore

MAX_JOBS = 256  # job states kept (finished ones for late readers, cancels ahead of their request)

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
    _jobs: dict[str, Job] = field(default_factory=dict)  # oldest first
    _active: dict[str, int] = field(default_factory=dict)  # job id -> requests running under it
    store: RunsStore | None = None  # where answers are kept as runs (None: not kept)
    pii_policy: str = "mask"  # personal data in a kept run: mask | hash | drop | off

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

    def trace_for(
        self, model: LoadedModel, text: str, backend: str, make: Callable[[LoadedModel], Trace]
    ) -> tuple[str, Trace]:
        """The cached trace of ``text`` by ``model`` (the model the request read once), or
        ``make(model)`` cached under that model's fingerprint; never another model's trace."""
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
            self._evict()
        return trace_id, trace

    def add_trace(self, model: LoadedModel, trace: Trace) -> str:
        """Keep a trace made elsewhere (a generation) under a new id; analyses of its text by the
        same model (backend auto) read it instead of running the model again — a causal model's only:
        an encoder-decoder's generation has a target an analysis of its text does not have."""
        from attnscope.capture.tokens import tokenize

        # the text's own tokens must be the trace's: a generated token sequence need not be the one
        # the tokenizer would choose for its text (then analyses of the text capture it afresh)
        same = trace.target_tokens is None and [t.id for t in tokenize(model.tokenizer, trace.text)] == [
            t.id for t in trace.tokens
        ]
        with self._lock:
            trace_id = uuid.uuid4().hex[:16]
            self._traces[trace_id] = trace
            if same:
                self._keys[(model.fingerprint, "auto", trace.text)] = trace_id
            self._evict()
        return trace_id

    def _evict(self) -> None:
        while len(self._traces) > self.max_traces:
            old_id, _ = self._traces.popitem(last=False)
            self._keys = {k: v for k, v in self._keys.items() if v != old_id}

    def kept_trace(self, model: LoadedModel, trace_id: str, text: str) -> Trace:
        """A kept trace by id, for a request about ``text`` with ``model``: refused when it is
        another text's or another model's."""
        trace = self.get_trace(trace_id)
        if trace.text != text:
            raise InputError(f"trace {trace_id} is of another text")
        if trace.model.fingerprint != model.fingerprint:
            raise InputError(f"trace {trace_id} was made with another model ({trace.model.spec})")
        return trace

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
                found = self._register(job_id)
        return found

    def _register(self, job_id: str) -> Job:
        """A new job under ``job_id`` (the newest), keeping at most ``MAX_JOBS``: the oldest finished
        ones go first, then the oldest that no request runs under, then the oldest. Under ``_lock``."""
        self._jobs.pop(job_id, None)
        job = self._jobs[job_id] = Job()
        while len(self._jobs) > MAX_JOBS:
            victim = next((k for k, j in self._jobs.items() if j.finished), None)
            if victim is None:
                victim = next((k for k in self._jobs if k not in self._active and k != job_id), None)
            self._jobs.pop(victim if victim is not None else next(iter(self._jobs)))
        return job

    def finish(self, job: Job | None) -> None:
        if job is not None:
            job.finished = True

    @contextmanager
    def running(self, job_id: str | None) -> Iterator[Job | None]:
        """The job of a request for the time it runs (None when the request named none)."""
        job = self.job(job_id)
        if job_id and job is not None:
            with self._lock:
                self._active[job_id] = self._active.get(job_id, 0) + 1
        try:
            yield job
        finally:
            self.finish(job)
            if job_id and job is not None:
                with self._lock:
                    left = self._active.pop(job_id, 1) - 1
                    if left > 0:
                        self._active[job_id] = left

    def job_state(self, job_id: str) -> dict[str, Any]:
        with self._lock:
            found = self._jobs.get(job_id)
        return found.state() if found is not None else dict(Job().state())

    def cancel(self, job_id: str) -> dict[str, Any]:
        """Ask the job to stop at its next progress report (registered ahead if it has not started)."""
        with self._lock:
            found = self._jobs.get(job_id)
            if found is None:
                found = self._register(job_id)
        found.cancel()
        return found.state()

    def job_items(self, job_id: str, since: int) -> list[dict[str, object]]:
        with self._lock:
            found = self._jobs.get(job_id)
        return found.items_since(since) if found is not None else []

    def forget_job(self, job_id: str) -> None:
        with self._lock:
            self._jobs.pop(job_id, None)

    def info(self) -> dict[str, Any]:
        """The ``model_status`` contract: loading status, its message and the loaded model."""
        from attnscope.render.json import model_status_json

        model = self.model
        return model_status_json(self.status, self.message, model.info() if model is not None else None)
