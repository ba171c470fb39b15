"""The runs store: every stored analysis, attribution or generation as a row of the runs database
and its result as content-addressed files beside it (``objects/ab/abcdef…``, named by SHA-256).

Writing a run: each object is written to a temporary file and fsynced outside any lock; then one
``BEGIN IMMEDIATE`` transaction renames the files into place (when not there already) and inserts
the run's rows. Deleting takes the same lock, so an object is never removed while another run is
being stored with it. A process killed at any point leaves either the whole run or none of it (at
worst an unreferenced object file, which :meth:`RunsStore.sweep` removes).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from attnscope.errors import InputError, NotFoundError
from attnscope.governance.masking import mask_answer
from attnscope.governance.provenance import with_run_id
from attnscope.home import home, private_folder, write_synced
from attnscope.store.database import connect
from attnscope.store.summaries import summary_of

RESULT = "result.json"  # the answer as it was shown (the JSON contract of its kind)
KINDS = ("analysis", "attribution", "generation", "heads", "parts", "agreement", "comparison", "report",
         "counterfactual", "bias")  # fmt: skip
ORIGINS = ("server", "cli", "library", "import")
RUN_ID = re.compile(r"^[0-9a-f]{16}$")
_UNUSED = "SELECT sha256 FROM objects WHERE sha256 NOT IN (SELECT sha256 FROM run_objects)"
_COLUMNS: tuple[str, ...] = ("id", "kind", "created", "origin", "text", "text_sha256", "chars", "model_spec")
_COLUMNS += ("model_name", "model_fingerprint", "method", "summary")  # the runs table's, in order
STALE_INCOMING_S = 3600  # a staged object file older than this was left by a killed process


@dataclass(frozen=True)
class Run:
    """One stored run's facts (its objects are read with :meth:`RunsStore.read`)."""

    id: str
    kind: str
    created: str
    origin: str
    text: str
    text_sha256: str
    chars: int
    model_spec: str
    model_name: str
    model_fingerprint: str
    method: str | None
    summary: str
    objects: dict[str, str]  # name -> sha256

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_when(value: str | None, name: str) -> str | None:
    """A date or time (ISO 8601, UTC: ``2026-11-26``, ``2026-11-26T18:00``, ``...Z``) as stored runs
    compare it; None stays None."""
    if value is None:
        return None
    try:
        when = datetime.fromisoformat(value.removesuffix("Z"))
    except ValueError:
        raise InputError(f"{name}: not a date or time {value!r} (write e.g. 2026-11-26 or 2026-11-26T18:00)") from None
    if when.tzinfo is not None:
        when = when.astimezone(UTC).replace(tzinfo=None)
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ") if "T" in value or " " in value else when.strftime("%Y-%m-%d")


def _sync_folder(folder: Path) -> None:
    """fsync a folder (its entries: a rename into it); a no-op where folders cannot be opened."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def _run(row: tuple[Any, ...], objects: dict[str, str]) -> Run:
    return Run(**dict(zip(_COLUMNS, row, strict=True)), objects=objects)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def check_run_id(run_id: str) -> str:
    if not isinstance(run_id, str) or not RUN_ID.fullmatch(run_id):
        raise InputError("a run id is 16 hexadecimal digits (attnscope runs list shows them)")
    return run_id


class RunsStore:
    """The store in ``folder`` (default: the data folder, ``ATTNSCOPE_HOME``): ``runs.sqlite3`` and
    ``objects/``. One connection per store; a store may be used from several threads (a lock-free
    SQLite connection per call would lose the busy timeout's fairness, so calls are serialised)."""

    def __init__(self, folder: Path | None = None) -> None:
        self.folder = Path(folder) if folder is not None else home() / "store"
        self.objects = self.folder / "objects"
        private_folder(self.folder, "the runs store")  # the runs hold texts: this user's only
        private_folder(self.objects, "the runs store's objects folder")
        self.path = self.folder / "runs.sqlite3"
        new = not self.path.exists()
        self._connection = connect(self.path)
        if new:
            with contextlib.suppress(OSError):
                self.path.chmod(0o600)
        import threading

        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._connection.close()

    def __enter__(self) -> RunsStore:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # ---- writing ------------------------------------------------------------------------------------
    def put(
        self,
        *,
        kind: str,
        text: str,
        model: Mapping[str, Any],
        result: Mapping[str, Any],
        origin: str,
        method: str | None = None,
        summary: str = "",  # one line (default: made from the answer)
        extra: Mapping[str, bytes] | None = None,
        run_id: str | None = None,
        created: str | None = None,
        text_sha256: str | None = None,
        pii_policy: str = "mask",
    ) -> Run:
        """Store one run: ``result`` (the JSON answer) as ``result.json`` plus ``extra`` named objects;
        ``model`` is the answer's model block (``spec``, ``name``, ``fingerprint``). Returns the run.

        Personal data in the text and the answer is masked first by ``pii_policy``
        (:mod:`attnscope.governance.masking`: ``mask``, ``hash``, ``drop`` — nothing is stored and
        :class:`~attnscope.governance.privacy.PiiFoundError` is raised when there is any — or
        ``off``); the stored text hash is then the masked text's."""
        if kind not in KINDS:
            raise InputError(f"unknown run kind {kind!r}; kinds: {', '.join(KINDS)}")
        if origin not in ORIGINS:
            raise InputError(f"unknown run origin {origin!r}")
        masked_text, result, masked = mask_answer(kind, text, dict(result), pii_policy)
        if masked:
            text, text_sha256 = masked_text, None
        summary = summary or summary_of(kind, result)  # from the masked answer
        run_id = check_run_id(run_id) if run_id is not None else uuid.uuid4().hex[:16]
        payloads = {RESULT: json.dumps(result, ensure_ascii=False, allow_nan=False).encode("utf-8")}
        payloads.update(extra or {})
        staged = {name: self._stage(data) for name, data in payloads.items()}  # (sha256, temp path)
        run = Run(
            id=run_id,
            kind=kind,
            created=created or utc_now(),
            origin=origin,
            text=text,
            text_sha256=text_sha256 or sha256_hex(text.encode("utf-8", "surrogatepass")),
            chars=len(text),
            model_spec=str(model.get("spec", "")),
            model_name=str(model.get("name", "")),
            model_fingerprint=str(model.get("fingerprint", "")),
            method=method,
            summary=summary,
            objects={name: sha for name, (sha, _) in staged.items()},
        )
        try:
            with self._transaction() as db:
                if db.execute("SELECT 1 FROM runs WHERE id = ?", (run.id,)).fetchone():
                    raise InputError(f"run {run.id} is already stored")
                for name, (sha, temp) in staged.items():
                    target = self._object_path(sha)
                    if not target.exists():
                        target.parent.mkdir(mode=0o700, exist_ok=True)
                        os.replace(temp, target)
                        _sync_folder(target.parent)  # the rename itself survives a power cut
                    db.execute("INSERT OR IGNORE INTO objects VALUES (?, ?)", (sha, len(payloads[name])))
                db.execute(
                    "INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        run.id, run.kind, run.created, run.origin, run.text, run.text_sha256, run.chars,
                        run.model_spec, run.model_name, run.model_fingerprint, run.method, run.summary,
                    ),
                )  # fmt: skip
                db.executemany(
                    "INSERT INTO run_objects VALUES (?, ?, ?)", [(run.id, n, s) for n, s in run.objects.items()]
                )
        finally:
            for _, temp in staged.values():
                temp.unlink(missing_ok=True)
        return run

    def _stage(self, data: bytes) -> tuple[str, Path]:
        """``data`` in a fsynced temporary file in the objects folder, and its SHA-256."""
        descriptor, name = tempfile.mkstemp(prefix=".incoming-", dir=self.objects)
        write_synced(descriptor, Path(name), data, f"to the runs store {self.folder}")
        return sha256_hex(data), Path(name)

    def _object_path(self, sha: str) -> Path:
        return self.objects / sha[:2] / sha

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            db = self._connection
            try:
                db.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as error:  # busy past the timeout, read-only, disk full
                raise InputError(f"the runs store {self.path} cannot be written now: {error}") from None
            try:
                yield db
            except sqlite3.Error as error:
                db.execute("ROLLBACK")
                raise InputError(f"the runs store {self.path} refused the change: {error}") from None
            except BaseException:
                db.execute("ROLLBACK")
                raise
            try:
                db.execute("COMMIT")
            except sqlite3.Error as error:
                db.execute("ROLLBACK")
                raise InputError(f"the runs store {self.path} could not commit: {error}") from None

    # ---- reading ------------------------------------------------------------------------------------
    def get(self, run_id: str) -> Run:
        check_run_id(run_id)
        with self._lock:
            row = self._connection.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
            if row is None:
                raise NotFoundError(f"no stored run {run_id}")
            objects = dict(self._connection.execute("SELECT name, sha256 FROM run_objects WHERE run_id = ?", (run_id,)))
        return _run(row, objects)

    def read(self, run: Run, name: str = RESULT) -> bytes:
        """An object of ``run``, its hash checked (a changed file is refused, never shown)."""
        sha = run.objects.get(name)
        if sha is None:
            raise NotFoundError(f"run {run.id} has no object {name!r}")
        try:
            data = self._object_path(sha).read_bytes()
        except OSError:
            raise InputError(f"run {run.id}: its {name} is missing from {self.objects}") from None
        if sha256_hex(data) != sha:
            raise InputError(f"run {run.id}: its {name} changed on disk (SHA-256 mismatch): not shown")
        return data

    def result(self, run: Run) -> dict[str, Any]:
        """The stored answer, its provenance record naming the run that keeps it (``run_id``; the
        stored bytes leave it out, so equal answers share one object)."""
        answer = dict(json.loads(self.read(run)))
        if isinstance(answer.get("provenance"), dict):
            answer["provenance"] = with_run_id(answer["provenance"], run.id)
        return answer

    def list(
        self,
        *,
        text: str | None = None,
        model: str | None = None,
        method: str | None = None,
        kind: str | None = None,
        since: str | None = None,
        until: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> tuple[list[Run], int]:
        """Runs newest first matching every filter given (``text``, ``model``: substrings, case-
        insensitive; ``since``/``until``: ISO dates or times, UTC), and how many match in all."""
        where, values = [], []
        for column, value in (("text", text), ("model_name || ' ' || model_spec", model)):
            if value:
                where.append(f"instr(lower({column}), lower(?)) > 0")
                values.append(value)
        for column, value in (("method", method), ("kind", kind)):
            if value:
                where.append(f"{column} = ?")
                values.append(value)
        if since:
            where.append("created >= ?")
            values.append(since)
        if until:
            where.append("created < ?")
            values.append(until)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        with self._lock:
            db = self._connection
            (total,) = db.execute(f"SELECT count(*) FROM runs {clause}", values).fetchone()
            rows = db.execute(
                f"SELECT * FROM runs {clause} ORDER BY created DESC, id LIMIT ? OFFSET ?", [*values, limit, offset]
            ).fetchall()
            objects: dict[str, dict[str, str]] = {}
            for run_id, name, sha in db.execute(
                f"SELECT run_id, name, sha256 FROM run_objects WHERE run_id IN ({','.join('?' * len(rows))})",
                [row[0] for row in rows],
            ):
                objects.setdefault(run_id, {})[name] = sha
        return [_run(row, objects.get(row[0], {})) for row in rows], int(total)

    # ---- deleting -----------------------------------------------------------------------------------
    def delete(self, run_id: str) -> None:
        """The run and the objects no other run uses."""
        check_run_id(run_id)
        with self._transaction() as db:
            if db.execute("DELETE FROM runs WHERE id = ?", (run_id,)).rowcount == 0:
                raise NotFoundError(f"no stored run {run_id}")
            unused = [row[0] for row in db.execute(_UNUSED)]
            db.executemany("DELETE FROM objects WHERE sha256 = ?", [(sha,) for sha in unused])
            # inside the lock (no run is being stored with them now) the files move aside; they go once
            # the deletion is committed, and come back if it is not (sweep() finishes a killed one)
            moved = []
            try:
                for sha in unused:
                    with contextlib.suppress(FileNotFoundError):
                        os.replace(self._object_path(sha), self._trash(sha))
                        moved.append(sha)
            except OSError:
                for sha in moved:
                    os.replace(self._trash(sha), self._object_path(sha))
                raise
        for sha in moved:
            self._trash(sha).unlink(missing_ok=True)

    def _trash(self, sha: str) -> Path:
        return self.objects / f".trash-{sha}"

    def sweep(self) -> int:
        """Remove object files no run refers to (left by a process killed while storing); how many."""
        removed = 0
        with self._transaction() as db:
            known = {row[0] for row in db.execute("SELECT sha256 FROM objects")}
            for path in self.objects.glob("*/*"):
                if path.name not in known:
                    path.unlink(missing_ok=True)
                    removed += 1
            for path in self.objects.glob(".trash-*"):  # a deletion killed before or after its commit
                sha = path.name.removeprefix(".trash-")
                if sha in known:
                    os.replace(path, self._object_path(sha))  # not committed: the run still uses it
                else:
                    path.unlink(missing_ok=True)
                    removed += 1
            for path in self.objects.glob(".incoming-*"):  # another process may be staging a young one
                with contextlib.suppress(OSError):
                    if time.time() - path.stat().st_mtime > STALE_INCOMING_S:
                        path.unlink()
                        removed += 1
        return removed

    def integrity(self) -> str:
        """SQLite's ``PRAGMA integrity_check`` (``ok`` when sound)."""
        with self._lock:
            return str(self._connection.execute("PRAGMA integrity_check").fetchone()[0])
