"""Models: the catalog of packaged offline models and ``load_model(spec)`` for every spec form.

Catalog models install into attnscope's data folder (``models.home``) verified and atomically
(``models.install``); ``list_models()`` says which are installed, damaged or missing, and how much
disk each takes (``models.listing``).
"""

from attnscope.models.catalog import CATALOG, DEFAULT_MODEL, CatalogEntry, get_entry, resolve_default
from attnscope.models.listing import list_models
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
    "tiny_kind",
]
