"""The loaded model (and switching it), the model catalog and the method catalogue."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from attnscope.server.host import ModelHost
from attnscope.server.schemas import SwitchRequest


def router(host: ModelHost) -> APIRouter:
    api = APIRouter(prefix="/api", tags=["models"])

    @api.get("/model", summary="The loaded model and the loading status")
    def get_model() -> dict[str, Any]:
        return host.info()

    @api.get("/models", summary="The model catalog, with what is installed (the CLI's `models --json`)")
    def get_models() -> dict[str, Any]:
        from attnscope.models import list_models
        from attnscope.render.json import models_json

        return models_json(list_models())

    @api.post("/model", summary="Load another model (the current one serves until it is ready)")
    def switch_model(request: SwitchRequest) -> dict[str, Any]:
        host.load(request.spec)
        return host.info()

    @api.get("/methods", summary="The method catalogue (the CLI's `methods --json`)")
    def get_methods() -> dict[str, Any]:
        from attnscope.methods.catalogue import catalogue_json

        return catalogue_json()

    return api
