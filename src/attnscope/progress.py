"""Progress reports and cancellation for long jobs (forward passes, head metrics, flow, gradients, occlusion).

A job is given a :data:`Progress` callback and calls it as ``progress(done, total, stage)`` as it goes.
The callback may raise :class:`attnscope.errors.CancelledError` to stop the job: that is how the web
app's Cancel button and Ctrl+C reach a running method without threads being killed.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

from attnscope.errors import CancelledError

Progress = Callable[[int, int, str], None]  # progress(done, total, stage)


def adapt(callback: Callable[..., None] | None) -> Progress | None:
    """A :class:`Progress` from a callback of two (``done, total``) or three (``+ stage``) arguments."""
    if callback is None:
        return None
    try:
        parameters = list(inspect.signature(callback).parameters.values())
    except (TypeError, ValueError):  # builtins without a signature: assume the full form
        return cast(Progress, callback)
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    required = [p for p in positional if p.default is p.empty]
    if (
        any(p.kind == p.VAR_POSITIONAL for p in parameters)
        or len(required) >= 3
        or (len(positional) >= 3 and positional[2].name == "stage")
    ):
        return cast(Progress, callback)

    def two(done: int, total: int, stage: str = "") -> None:
        callback(done, total)

    return two


def report(progress: Progress | None, done: int, total: int, stage: str = "") -> None:
    """Call ``progress`` if there is one."""
    if progress is not None:
        progress(done, total, stage)


def scaled(progress: Progress | None, start: int, span: int, total: int, stage: str) -> Progress | None:
    """A callback for a sub-job that covers ``[start, start + span)`` of ``total`` steps of its parent."""
    if progress is None:
        return None

    def sub(done: int, sub_total: int, sub_stage: str = "") -> None:
        share = start + (span * done // max(sub_total, 1))
        report(progress, share, total, sub_stage or stage)

    return sub


@dataclass
class Job:
    """The state of one cancellable job: what it has done, and whether its user asked it to stop."""

    done: int = 0
    total: int = 0
    stage: str = ""
    finished: bool = False
    cancelled: bool = False
    items: list[dict[str, object]] = field(default_factory=list)  # what the job streams (generated tokens)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __call__(self, done: int, total: int, stage: str = "") -> None:
        with self._lock:
            self.done, self.total = int(done), int(total)
            if stage:
                self.stage = stage
            cancelled = self.cancelled
        if cancelled:
            raise CancelledError("cancelled by the user")

    def push(self, item: dict[str, object]) -> None:
        """Add one streamed item (the progress events carry the items not sent yet)."""
        with self._lock:
            self.items.append(item)

    def items_since(self, count: int) -> list[dict[str, object]]:
        with self._lock:
            return self.items[count:]

    def cancel(self) -> None:
        with self._lock:
            self.cancelled = True

    def state(self) -> dict[str, object]:
        with self._lock:
            return {
                "done": self.done,
                "total": self.total,
                "stage": self.stage,
                "finished": self.finished,
                "cancelled": self.cancelled,
            }
