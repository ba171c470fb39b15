"""Models: the catalog of packaged offline models and ``load_model(spec)`` for every spec form."""

from attnscope.models.catalog import CATALOG, DEFAULT_MODEL, CatalogEntry, get_entry, resolve_default
from attnscope.models.loaded import LoadedModel
from attnscope.models.loading import load_model
from attnscope.models.tiny import TINY_FAMILIES, tiny_kind

__all__ = [
    "CATALOG",
    "DEFAULT_MODEL",
    "TINY_FAMILIES",
    "CatalogEntry",
    "LoadedModel",
    "get_entry",
    "list_models",
    "load_model",
    "resolve_default",
]


def list_models() -> list[dict[str, object]]:
    """Every catalog alias with what it is, whether it is installed, and how to install it."""
    rows: list[dict[str, object]] = []
    for entry in CATALOG:
        rows.append(
            {
                "alias": entry.alias,
                "title": entry.title,
                "kind": entry.kind,
                "description": entry.description,
                "languages": entry.languages,
                "license": entry.license,
                "download_mb": entry.download_mb,
                "installed": entry.installed,
                "default": entry.alias == DEFAULT_MODEL,
                "sha256": entry.sha256,
                "install": entry.install_hint(),
                "pip": " ".join(entry.install_command()[1:]),
            }
        )
    for family in TINY_FAMILIES:
        rows.append(
            {
                "alias": f"tiny:{family}",
                "title": f"tiny random {family}",
                "kind": tiny_kind(family),
                "description": "randomly initialised from a small config (tests and demos; predictions are noise)",
                "languages": "any (byte-level tokenizer)",
                "license": "n/a",
                "download_mb": 0,
                "installed": True,
                "default": False,
                "sha256": None,
                "install": "built in",
                "pip": None,
            }
        )
    return rows
