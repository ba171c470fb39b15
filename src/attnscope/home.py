"""Where attnscope keeps the user's data (runs database, array files, signing keys): ``ATTNSCOPE_HOME``
when set, else the platform's user data folder (``platformdirs``: ``~/.local/share/attnscope`` on
Linux). Nothing is created on import; :func:`home` creates the folder when asked for it."""

from __future__ import annotations

import os
from pathlib import Path

from attnscope.errors import InputError


def home(create: bool = True) -> Path:
    """The data folder (created, mode 0700, unless ``create`` is false)."""
    chosen = os.environ.get("ATTNSCOPE_HOME")
    if chosen is not None and not chosen.strip():
        raise InputError("ATTNSCOPE_HOME is set but empty: name a folder or unset it")
    if chosen:
        path = Path(chosen).expanduser()
    else:
        from platformdirs import user_data_dir

        path = Path(user_data_dir("attnscope", appauthor=False))
    if create:
        try:
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as error:
            raise InputError(f"cannot create the data folder {path}: {error.strerror}") from error
        if not path.is_dir():
            raise InputError(f"the data folder {path} is not a folder")
    return path
