"""``POST /api/report``: the report of ``attnscope report`` (every method, their agreement, the head
metrics) as one zip — ``report.html``, ``report.json`` and, when asked to sign, ``report.intoto.json``
signed with the server's key (``$ATTNSCOPE_HOME/keys``, made by ``attnscope keys generate``; its
passphrase, if any, from ``ATTNSCOPE_KEY_PASSPHRASE``). Personal data is masked by the server's
``--pii-policy`` before anything is written (``drop``: refused). ``language`` (the page's: ``en`` or
``zh-CN``) words report.html; report.json is the same in either."""

from __future__ import annotations

import io
import json
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from attnscope.errors import InputError
from attnscope.server.host import ModelHost
from attnscope.server.routes.analysis import check_interactive
from attnscope.server.schemas import ReportRequest

NAMES = ("report.html", "report.json", "report.intoto.json")


def _server_key() -> Any:
    from attnscope.governance.signing import PRIVATE_KEY_NAME, default_key_folder, load_private_key

    path = default_key_folder(create=False) / PRIVATE_KEY_NAME
    if not path.exists():
        raise InputError("this server has no signing key: run 'attnscope keys generate' where it runs, then ask again")
    from attnscope.governance.keys import env_passphrase

    return load_private_key(path, env_passphrase())


def router(host: ModelHost) -> APIRouter:
    api = APIRouter(prefix="/api", tags=["report"])

    @api.post("/report", summary="The report of `attnscope report` as a zip, signed with the server's key on request")
    def report(request: ReportRequest) -> Response:
        from attnscope.governance.masking import mask_answer
        from attnscope.governance.privacy import PiiFoundError
        from attnscope.methods.report import explain
        from attnscope.render.html import report_html
        from attnscope.render.json import report_json

        key = _server_key() if request.sign else None  # refused before the methods run
        if host.pii_policy == "drop":  # refused before the methods run too
            try:
                mask_answer("report", request.text, {"text": request.text}, "drop")
            except PiiFoundError as error:
                raise InputError(f"no report (the server's --pii-policy is drop): {error}") from None
        model = host.current()
        check_interactive(model, request.text, "a report")  # every method runs the model again
        with host.running(request.progress_id) as job:
            made = explain(
                model, request.text, methods=request.methods, granularity=request.granularity, target=request.target,
                objective=request.objective, progress=job,
            )  # fmt: skip
        data = report_json(made)
        if request.dp_epsilon is not None:  # noised before it is written; the observations worded again
            from attnscope.governance.dp_methods import privatize_methods
            from attnscope.governance.provenance import seal
            from attnscope.render.observations import observations

            data = privatize_methods(
                "report", data, request.dp_epsilon, mechanism=request.dp_mechanism, delta=request.dp_delta
            )
            data["observations"] = observations(data)
            data = seal(data)
        _, data, _ = mask_answer("report", request.text, data, host.pii_policy)
        if key is not None:
            from attnscope.governance.provenance import with_signing_key
            from attnscope.governance.signing import key_id

            data["provenance"] = with_signing_key(data["provenance"], key_id(key.public_key()))
        with tempfile.TemporaryDirectory() as folder:
            html, answer = Path(folder) / NAMES[0], Path(folder) / NAMES[1]
            html.write_text(report_html(data, request.language), encoding="utf-8")
            answer.write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")
            files = [html, answer]
            if key is not None:
                from attnscope.governance.signing import sign_files

                files.append(sign_files([html, answer], data["provenance"], key, Path(folder) / NAMES[2]))
            buffer = io.BytesIO()
            with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
                for path in files:
                    archive.write(path, path.name)
        headers = {"Content-Disposition": 'attachment; filename="attnscope-report.zip"'}
        return Response(buffer.getvalue(), media_type="application/zip", headers=headers)

    return api
