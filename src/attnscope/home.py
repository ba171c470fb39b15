"""Where attnscope keeps the user's data (runs database, array files, signing keys): ``ATTNSCOPE_HOME``
when set, else the platform's user data folder (``platformdirs``: ``~/.local/share/attnscope`` on
Linux: ``$XDG_DATA_HOME/attnscope``). Installed models live in its ``models/``, the runs store in
``store/``, keys in ``keys/``. Nothing is created on import; :func:`home` creates the folder when asked."""

from __future__ import annotations

import os
from pathlib import Path

from attnscope.errors import InputError


def home(create: bool = True) -> Path:
    """The data folder (created, mode 0700, unless ``create`` is false)."""
    chosen = os.environ.get("ATTNSCOPE_HOME", "").strip()  # set but empty: as if unset
    if chosen:
        path = Path(chosen).expanduser()
    else:
        from platformdirs import user_data_dir

        path = Path(user_data_dir("attnscope", appauthor=False))
    return private_folder(path, "the data folder") if create else path


def private_folder(path: Path, what: str) -> Path:
    """``path`` as a folder only this user can enter (created, mode 0700, when missing); ``what`` names
    it in the one-line error when it cannot be."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as error:
        raise InputError(f"cannot create {what} {path}: {error.strerror or error}") from None
    if not path.is_dir():
        raise InputError(f"{what} {path} is not a folder")
    return path


def write_synced(descriptor: int, path: Path, data: bytes, what: str) -> None:
    """Write ``data`` to the open file ``descriptor`` (``path``) and fsync it; on failure the file is
    removed and the one-line error names ``what`` was being written."""
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as error:
        path.unlink(missing_ok=True)
        raise InputError(f"cannot write {what}: {error.strerror or error}") from None


def write_atomic(path: Path, data: bytes) -> Path:
    """``data`` to ``path`` through a temporary file beside it (fsynced, then renamed over ``path``): a
    refusal or a failure leaves no half-written file. The file gets the umask's permissions, as any file
    the user writes; a folder as ``path`` or a missing parent folder is a one-line :class:`InputError`."""
    import secrets

    if path.is_dir():
        raise InputError(f"{path} is a folder")
    if not path.parent.is_dir():
        raise InputError(f"folder {path.parent} does not exist (to write {path.name} in)")
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.partial")
    try:
        with open(temporary, "xb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        raise InputError(f"cannot write {path}: {error.strerror or error}") from None
    return path
