"""The atlases a server serves (``attnscope serve --atlas FOLDER``), by name: a request names an atlas,
never a path; an atlas whose atlas.json changed is read again, and an answer interrupted by a change
is answered again from the new version, so no answer mixes two versions."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar

from attnscope.batch.atlas_index import AtlasChanged, AtlasFormatError
from attnscope.batch.reading import Atlas
from attnscope.errors import InputError, NotFoundError

Answer = TypeVar("Answer")


class AtlasShelf:
    """The atlases a server serves, by name (never by a path from a request); each re-read when its index changes."""

    def __init__(self, folders: Iterable[str | Path] = ()) -> None:
        self._folders: OrderedDict[str, Path] = OrderedDict()
        self._open: dict[str, Atlas] = {}
        self._lock = threading.Lock()
        for folder in folders:
            atlas = Atlas.open(folder)  # a bad atlas stops the server before it starts
            if atlas.name in self._folders:
                first = self._folders[atlas.name]
                raise InputError(f"two atlases are named {atlas.name!r} ({first} and {folder}): rename one folder")
            self._folders[atlas.name] = Path(folder)
            self._open[atlas.name] = atlas

    def names(self) -> list[str]:
        return list(self._folders)

    def get(self, name: str) -> Atlas:
        """The current version of atlas ``name`` (re-read when its atlas.json changed since last time)."""
        if name not in self._folders:
            known = ", ".join(self._folders) or "none: start the server with --atlas FOLDER"
            raise NotFoundError(f"no atlas named {name!r}; this server has {known}")
        with self._lock:
            atlas = self._open.get(name)
            if atlas is None or atlas.changed():
                atlas = self._open[name] = Atlas.open(self._folders[name])
            return atlas

    def read(self, name: str, answer: Callable[[Atlas], Answer]) -> Answer:
        """``answer(atlas)`` on the current version; once more on a fresh read when the atlas changed meanwhile."""
        try:
            return answer(self.get(name))
        except AtlasChanged:
            try:
                return answer(self.get(name))
            except AtlasChanged:
                raise AtlasFormatError(f"atlas {name} is being rewritten; try again") from None
