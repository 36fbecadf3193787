"""What the stores write and read through, whatever the backend: a connection that runs one
statement at a time (``?`` placeholders, SQL both SQLite and PostgreSQL speak) and the cursor it
answers. ``sqlite3.Connection`` is one; :mod:`facelens.storage.postgres` adapts psycopg's."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Protocol


class Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Connection(Protocol):
    def execute(self, sql: str, parameters: Sequence[Any] = ..., /) -> Cursor: ...

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> Cursor: ...
