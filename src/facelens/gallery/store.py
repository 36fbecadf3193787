"""What a gallery's parts (people, faces, stored vectors) read and write through: a gallery
store, one per backend — :class:`~facelens.gallery.file.GalleryFile` (a SQLite file) and
:class:`~facelens.gallery.postgres.PostgresStore` (a database shared by several servers)."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Protocol

from facelens.models.profiles import ModelProfile
from facelens.storage.connection import Connection


class GalleryStore(Protocol):
    profile: ModelProfile  # the model the gallery is bound to
    lock: threading.RLock  # held for reads that must see one state
    read_only: bool
    where: str  # the file, or the database's URL with its password masked (for messages)
    data_dir: Path  # where this server keeps its own files

    @property
    def events_url(self) -> str | None:
        """The shared database the event log is in (None: the data directory's file)."""
        ...

    @property
    def damaged(self) -> str | None: ...

    @property
    def unreachable(self) -> str | None:
        """Why the database cannot be reached now (recognition goes on from memory)."""
        ...

    def transaction(self, *, erases: bool = False) -> AbstractContextManager[Connection]: ...

    def read(self, sql: str, args: Sequence[object] = ()) -> list[tuple[Any, ...]]: ...

    def stream(self, sql: str, args: Sequence[object] = ()) -> Iterator[list[tuple[Any, ...]]]:
        """The rows of one read, a chunk at a time (never all held at once)."""
        ...

    def bump(self, db: Connection) -> None: ...

    def revision(self) -> int: ...

    def require_bound(self, db: Connection) -> None: ...

    def check_model(self) -> None: ...

    def check_writable(self) -> None: ...

    def health(self, max_age_s: float = 0.0) -> list[str]: ...

    def quick_check(self) -> list[str]: ...

    def backup(self, target: Path) -> None: ...

    def close(self) -> None: ...
