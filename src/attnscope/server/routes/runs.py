"""The runs store over HTTP: what the server stored (every analysis, attribution and generation it
answered, unless ``attnscope serve --no-store``), searched, shown exactly as it was answered,
exported as one file and deleted. ``keep`` is what the answering routes call."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import Response

from attnscope.contracts import SCHEMA_VERSION
from attnscope.errors import InputError
from attnscope.governance.privacy import PiiFoundError
from attnscope.server.host import ModelHost
from attnscope.server.schemas import RunId, RunsParams
from attnscope.store.runs import Run, RunsStore, check_when


def keep(host: ModelHost, kind: str, text: str, result: dict[str, Any], method: str | None = None) -> dict[str, Any]:
    """``result`` stored as a run of ``kind`` when the server keeps runs; the answer gains its ``run_id``."""
    if host.store is None:
        return result
    try:
        run = host.store.put(
            kind=kind, text=text, model=result["model"], result=result, origin="server", method=method,
            pii_policy=host.pii_policy,
        )  # fmt: skip
    except PiiFoundError:  # --pii-policy drop: a run with personal data is not kept; the answer is given
        return result
    return {**result, "run_id": run.id}


def _store(host: ModelHost) -> RunsStore:
    if host.store is None:
        raise InputError("this server keeps no runs (it was started with --no-store)")
    return host.store


def run_json(run: Run) -> dict[str, Any]:
    return {key: value for key, value in run.to_dict().items() if key != "objects"}


def router(host: ModelHost) -> APIRouter:
    api = APIRouter(prefix="/api/runs", tags=["runs"])

    @api.get("", summary="Stored runs, newest first: search by text, model, method, kind and date")
    def list_runs(params: Annotated[RunsParams, Query()]) -> dict[str, Any]:
        query = params.model_dump()
        query["since"], query["until"] = check_when(params.since, "since"), check_when(params.until, "until")
        runs, total = _store(host).list(**query)
        return {"schema_version": SCHEMA_VERSION, "result": "runs", "total": total, "runs": [run_json(r) for r in runs]}

    @api.get("/{run_id}", summary="One stored run: its facts and the answer exactly as it was given")
    def show(run_id: RunId) -> dict[str, Any]:
        store = _store(host)
        run = store.get(run_id)
        return {"schema_version": SCHEMA_VERSION, "result": "run", "run": run_json(run), "answer": store.result(run)}

    @api.get("/{run_id}/export", summary="One stored run as one file (zip), to import on another machine")
    def export(run_id: RunId) -> Response:
        import tempfile
        from pathlib import Path

        from attnscope.store.transfer import export_run

        with tempfile.TemporaryDirectory() as folder:
            path = export_run(_store(host), run_id, Path(folder) / f"attnscope-run-{run_id}.zip")
            data = path.read_bytes()
        headers = {"Content-Disposition": f'attachment; filename="attnscope-run-{run_id}.zip"'}
        return Response(data, media_type="application/zip", headers=headers)

    @api.delete("/{run_id}", summary="Delete a stored run (and the files no other run uses)")
    def delete(run_id: RunId) -> dict[str, Any]:
        _store(host).delete(run_id)
        return {"schema_version": SCHEMA_VERSION, "result": "deleted", "run_id": run_id}

    return api
