"""Corpus head atlases over HTTP: the atlases ``attnscope batch`` wrote that the server was given
(``attnscope serve --atlas FOLDER``, repeatable), read by :mod:`attnscope.batch.reading`.

- ``GET /api/corpus``: the atlases, by name, with their index facts.
- ``GET /api/corpus/{name}``: one atlas' index facts and, per head metric, every head's corpus mean,
  count, minimum and maximum as (layers, heads) lists.
- ``GET /api/corpus/{name}/heads/{layer}/{head}?metric=&top=``: one head's metric over the corpus
  (count, mean, std, quantiles, histogram) and the ``top`` prompts with the largest |robust z|.
- ``GET /api/corpus/{name}/prompts/{index}``: one prompt as stored (text, tokens, predictions,
  run_id, method scores).

A request names an atlas by name only, never a path; unknown names, layers, heads and prompts are
404, malformed ones 422, an atlas that became unreadable 409 (``bad_atlas``). An atlas rewritten
while served is re-read when its atlas.json changes; every answer comes from one version of it (its
``version``, the SHA-256 of that atlas.json).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from pydantic import StringConstraints

from attnscope.batch.atlas_index import AtlasFormatError
from attnscope.batch.reading import Atlas
from attnscope.batch.shelf import AtlasShelf
from attnscope.contracts import SCHEMA_VERSION

AtlasName = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")]
Index = Annotated[int, Path(ge=0, le=2**62)]
MetricName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
MAX_UNUSUAL = 100


def router(shelf: AtlasShelf) -> APIRouter:
    api = APIRouter(prefix="/api/corpus", tags=["corpus"])

    def answer(result: str, body: dict[str, Any]) -> dict[str, Any]:
        return {"schema_version": SCHEMA_VERSION, "result": result, **body}

    @api.get("", summary="The corpus atlases this server was given (attnscope serve --atlas FOLDER)")
    def list_atlases() -> dict[str, Any]:
        def listed(name: str) -> dict[str, Any]:
            try:
                return shelf.read(name, Atlas.describe)
            except AtlasFormatError as error:  # one spoiled atlas must not hide the others: listed with why
                return {"name": name, "error": str(error)}

        return answer("corpus-atlases", {"atlases": [listed(name) for name in shelf.names()]})

    @api.get("/{name}", summary="One atlas: its index and every head's corpus mean of each metric")
    def show(name: AtlasName) -> dict[str, Any]:
        def read(atlas: Atlas) -> dict[str, Any]:
            return {"atlas": atlas.describe(), "grid": atlas.grid()}

        return answer("corpus-atlas", shelf.read(name, read))

    @api.get("/{name}/heads/{layer}/{head}", summary="One head's metric over the corpus and its most unusual prompts")
    def head(
        name: AtlasName,
        layer: Annotated[int, Path(ge=0, le=10_000)],
        head: Annotated[int, Path(ge=0, le=10_000)],
        metric: Annotated[MetricName | None, Query()] = None,
        top: Annotated[int, Query(ge=1, le=MAX_UNUSUAL)] = 10,
    ) -> dict[str, Any]:
        def read(atlas: Atlas) -> dict[str, Any]:
            return {"atlas": atlas.describe(), **atlas.head(layer, head, metric or atlas.metrics[0], top)}

        return answer("corpus-head", shelf.read(name, read))

    @api.get("/{name}/prompts/{index}", summary="One prompt of an atlas as stored")
    def prompt(name: AtlasName, index: Index) -> dict[str, Any]:
        def read(atlas: Atlas) -> dict[str, Any]:
            return {"atlas": {"name": atlas.name, "version": atlas.version, "model": atlas.index["model"]},
                    "prompt": atlas.prompt(index)}  # fmt: skip

        return answer("corpus-prompt", shelf.read(name, read))

    return api
