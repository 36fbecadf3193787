"""SQLite files under the data directory: connections in WAL mode (or read only, for commands
that only read), the one careful write transaction, and :class:`Database`, the one object per
file per process that everything stored there goes through (the gallery, API keys, idempotency
records, the event log and its outbox, the stream table).

The seam for another backend is above this module: the stores (gallery, keys, events) speak
to a ``Database``; nothing else holds a connection."""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from facelens.errors import StorageError
from facelens.storage.errors import (
    _UNREACHABLE,
    _primary,
    is_damage,
    not_ours,
    os_storage_error,
    storage_error,
)

Failure = Callable[[sqlite3.Error], Exception]  # our error for one of SQLite's


STREAM_ROWS = 10_000  # rows a streamed read holds at once


def now_text() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@contextlib.contextmanager
def write_transaction(
    db: sqlite3.Connection, failure: Callable[[sqlite3.Error], Exception]
) -> Iterator[sqlite3.Connection]:
    """One write transaction on ``db`` (the caller holds its lock): committed whole, or rolled
    back whole on any error, a storage failure raised as ``failure(error)`` (our error, never
    SQLite's). On SQLITE_FULL and some I/O errors SQLite has rolled back already: a second
    ROLLBACK would fail too and hide the real error, so it is only sent while one is open."""
    try:
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            if db.in_transaction:
                with contextlib.suppress(sqlite3.Error):  # the first error is the one to tell
                    db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
    except sqlite3.Error as exc:
        if db.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
        raise failure(exc) from None


def online_copy(
    source: sqlite3.Connection,
    target: Path,
    on_damage: Failure,
    doing: str = "write the copy",
    what: str = "Gallery",
) -> None:
    """SQLite's online backup of the open ``source`` into the new file ``target`` (mode 0600:
    it holds biometric data) in one step, so the copy is one consistent state of the file.
    Damage met in the source is raised as ``on_damage(error)``; any other failure is the
    target's (``doing``: what to say was being done, e.g. "write the backup"; ``what`` the
    file holds)."""
    try:
        os.close(os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except OSError as exc:
        raise os_storage_error(target, exc, doing) from None
    try:
        copy = sqlite3.connect(target)
        try:
            source.backup(copy)
        finally:
            copy.close()
    except sqlite3.Error as exc:
        raise (on_damage(exc) if is_damage(exc) else storage_error(target, exc, what)) from None


def connect(path: Path, what: str = "Gallery") -> sqlite3.Connection:
    """An autocommit connection in WAL mode, shareable across threads (callers lock). Deleted
    content is overwritten (``secure_delete``), so removed faces leave no copy in the file."""
    try:
        # Made for its owner only: it holds biometric data (the embeddings, thumbnails and
        # event crops). A directory or file that exists keeps the mode it has.
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        hint = not_ours(path) if exc.errno in (errno.EACCES, errno.EPERM) else None
        raise StorageError(
            f"Cannot create the data directory {path.parent}: {exc.strerror or exc}. "
            + (
                f"{hint[0].upper()}{hint[1:]}."
                if hint
                else "Fix its permissions or choose another --data-dir / FACELENS_DATA_DIR."
            )
        ) from None
    if not path.exists():  # SQLite makes its -wal and -shm with the main file's mode
        with contextlib.suppress(OSError):  # SQLite says why, below
            path.touch(mode=0o600, exist_ok=True)
    return _connection(path, what, _WRITER_PRAGMAS)


_WRITER_PRAGMAS = (
    "PRAGMA foreign_keys = ON",
    "PRAGMA secure_delete = ON",
    "PRAGMA journal_mode = WAL",
    "PRAGMA synchronous = NORMAL",
)


def _connection(path: Path, what: str, pragmas: Sequence[str]) -> sqlite3.Connection:
    """An autocommit connection to ``path``, shareable across threads (callers lock), with
    ``pragmas`` applied; our storage error if it cannot be made, nothing left open."""
    try:
        db = sqlite3.connect(path, timeout=30, check_same_thread=False, isolation_level=None)
    except sqlite3.Error as exc:
        raise storage_error(path, exc, what) from None
    try:
        for pragma in pragmas:
            db.execute(pragma)
    except sqlite3.Error as exc:
        db.close()  # not left open on a file that is not one (or not reachable)
        raise storage_error(path, exc, what) from None
    return db


def _wal_holds_changes(path: Path) -> bool:
    try:
        return path.with_name(path.name + "-wal").stat().st_size > 0
    except FileNotFoundError:
        return False


def _connect_read_only(path: Path) -> sqlite3.Connection:
    """:func:`connect_read_only`, raising SQLite's own errors."""
    uri = path.absolute().as_uri()
    tries = (f"{uri}?mode=ro", f"{uri}?mode=ro&immutable=1")
    for attempt, address in enumerate(tries):
        db = None
        try:
            db = sqlite3.connect(
                address, uri=True, timeout=30, check_same_thread=False, isolation_level=None
            )
            db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()  # opens the file
            return db
        except sqlite3.Error as exc:
            if db is not None:
                db.close()
            if attempt or _primary(exc) not in _UNREACHABLE or _wal_holds_changes(path):
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def connect_read_only(path: Path, what: str = "Gallery") -> sqlite3.Connection:
    """A connection that reads ``path`` and writes nothing anywhere, for commands that only
    read. On a full disk or a read-only filesystem SQLite cannot make the ``-shm`` file that
    connections share; when no ``-wal`` file holds changes the main file lacks (nobody has the
    gallery open), the file is then read as it stands (SQLite's ``immutable``)."""
    try:
        return _connect_read_only(path)
    except sqlite3.Error as exc:
        raise storage_error(path, exc, what) from None


def quick_check_file(path: Path, what: str = "Gallery") -> list[str]:
    """SQLite's ``quick_check`` of the file as it is on disk, on a connection of its own
    (another connection's page cache can hide damage done to the file under it): its problems,
    none when it is sound. A file that cannot be read (full disk, read only, I/O error) is a
    :class:`StorageError`, which says nothing about damage."""
    try:
        db = _connect_read_only(path)
        try:
            found = [str(row[0]) for row in db.execute("PRAGMA quick_check").fetchall()]
        finally:
            db.close()
    except sqlite3.Error as exc:
        if is_damage(exc):
            return [str(exc)]
        raise storage_error(path, exc, what) from None
    return [] if found == ["ok"] else found


def check_file(path: Path) -> list[str]:
    """:func:`quick_check_file` of a gallery file, however damaged (for ``facelens gallery
    check``)."""
    if not path.is_file():
        raise StorageError(f"There is no gallery at {path}.")
    return quick_check_file(path)


@dataclass(eq=False)
class _Open:
    """A file open in this process: the connection that writes it with the lock that
    serialises its writes, and the one that reads it (made on the first read) with its own
    lock: in WAL mode a read waits for no writer, so a write waiting for another process's
    lock (up to 30 s) holds up no read (an API key check, the events tail)."""

    connection: sqlite3.Connection
    path: Path
    what: str
    lock: threading.RLock = field(default_factory=threading.RLock)
    users: int = 1
    identity: tuple[int, int] | None = None  # the file's device and inode, when opened
    reader: sqlite3.Connection | None = None
    read_lock: threading.RLock = field(default_factory=threading.RLock)
    read_only: bool = False  # one connection, read only: it reads and there is no writer

    def reads(self) -> sqlite3.Connection:
        """The reading connection (the caller holds ``read_lock``)."""
        if self.read_only:
            return self.connection
        if self.reader is None:
            self.reader = _connect_reader(self.path, self.what)
        return self.reader

    def close(self) -> None:
        with self.lock:
            self.connection.close()
        with self.read_lock:
            if self.reader is not None:
                self.reader.close()


def _connect_reader(path: Path, what: str) -> sqlite3.Connection:
    """A connection that only reads (``query_only``) a file in WAL mode."""
    return _connection(path, what, ("PRAGMA query_only = ON",))


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        found = os.stat(path)
    except OSError:
        return None
    return found.st_dev, found.st_ino


_open_files: dict[Path, _Open] = {}
_opening = threading.Lock()


class Database:
    """One SQLite file as this process uses it: one connection that writes (one lock, one
    careful write transaction), one that reads (its own lock: reads never wait for a
    write), one mapping of storage errors (said as ``what`` the file holds: "Gallery",
    "Event log"). :meth:`open` gives every caller in the process the same connections to a
    file (each its own handle, closed on its own); :meth:`open_read_only` a connection of
    its own that writes nothing anywhere. Safe to share across threads."""

    dialect = "sqlite"

    def __init__(self, path: Path, what: str, opened: _Open, key: Path | None) -> None:
        self.path = path
        self.what = what
        self.read_only = key is None
        self.lock = opened.lock  # the writes'
        self._opened: _Open | None = opened
        self._key = key

    @classmethod
    def open(cls, path: Path, what: str = "Gallery") -> Database:
        """The process's connection to ``path`` (made, with its folder, when it is the first,
        or when the file there is not the one it has open: moved away or deleted since)."""
        key = Path(os.path.realpath(path))
        with _opening:
            opened = _open_files.get(key)
            if opened is not None and opened.identity == _identity(path):
                opened.users += 1
            else:  # the first, or the file there was replaced (moved away, deleted) since
                opened = _open_files[key] = _Open(connect(path, what), path, what)
                opened.identity = _identity(path)
        return cls(path, what, opened, key)

    @classmethod
    def open_read_only(cls, path: Path, what: str = "Gallery") -> Database:
        """A connection of its own that reads ``path`` and writes nothing anywhere."""
        opened = _Open(connect_read_only(path, what), path, what, read_only=True)
        opened.read_lock = opened.lock
        return cls(path, what, opened, None)

    def failure(self, exc: sqlite3.Error) -> StorageError:
        """Our error for SQLite's ``exc`` on this file."""
        return storage_error(self.path, exc, self.what)

    @property
    def _open(self) -> _Open:
        if self._opened is None:
            raise StorageError(f"{self.what} {self.path}: closed by this process.")
        return self._opened

    @property
    def _connection(self) -> sqlite3.Connection:
        return self._open.connection

    def execute(
        self, sql: str, args: Sequence[object] = (), failure: Failure | None = None
    ) -> list[tuple[object, ...]]:
        """One statement that writes (atomic on its own), its rows; a storage failure raised
        as ``failure(error)`` (by default :meth:`failure`)."""
        with self.lock:
            try:
                return self._connection.execute(sql, args).fetchall()
            except sqlite3.Error as exc:
                raise (failure or self.failure)(exc) from None

    def read(
        self, sql: str, args: Sequence[object] = (), failure: Failure | None = None
    ) -> list[tuple[object, ...]]:
        """One statement that only reads, its rows: what is committed, never waiting for a
        write (of this process or another)."""
        with self.reading(failure) as db:
            return db.execute(sql, args).fetchall()

    def stream(
        self,
        sql: str,
        args: Sequence[object] = (),
        size: int | None = None,
        failure: Failure | None = None,
    ) -> Iterator[list[tuple[object, ...]]]:
        """The rows of one statement that only reads, ``size`` at a time (none held all at
        once: a million stored vectors), read on the reading connection, which no other
        thread of this process uses meanwhile."""
        with self.reading(failure) as db:
            cursor = db.execute(sql, args)
            while rows := cursor.fetchmany(size or STREAM_ROWS):
                yield rows

    def script(self, sql: str) -> None:
        """Statements that make a store's tables (``CREATE ... IF NOT EXISTS``)."""
        with self.lock:
            try:
                self._connection.executescript(sql)
            except sqlite3.Error as exc:
                raise self.failure(exc) from None

    @contextlib.contextmanager
    def reading(self, failure: Failure | None = None) -> Iterator[sqlite3.Connection]:
        """The reading connection, for several reads in a row (no other thread of this
        process uses it meanwhile); it refuses writes."""
        opened = self._open
        with opened.read_lock:
            try:
                yield opened.reads()
            except sqlite3.Error as exc:
                raise (failure or self.failure)(exc) from None

    @contextlib.contextmanager
    def transaction(self, failure: Failure | None = None) -> Iterator[sqlite3.Connection]:
        """One write transaction (:func:`write_transaction`), a storage failure raised as
        ``failure(error)`` (by default :meth:`failure`)."""
        with self.lock, write_transaction(self._connection, failure or self.failure) as db:
            yield db

    def checkpoint(self) -> str | None:
        """Empty the WAL into the file and truncate it: None when done, else why not."""
        with self.lock:
            try:
                busy = self._connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
            except sqlite3.Error as exc:
                return str(exc)
        return "another connection was reading" if busy else None

    def close(self) -> None:
        """Give up this handle; the connection closes with the last one (again: nothing)."""
        opened, self._opened = self._opened, None
        if opened is None:
            return
        if self._key is not None:
            with _opening:  # never held while waiting for a file's lock
                opened.users -= 1
                if opened.users:
                    return
                if _open_files.get(self._key) is opened:  # not one opened since in its place
                    del _open_files[self._key]
        opened.close()


class Table:
    """A small store of its own in a file (API keys, idempotency records, the stream table),
    or in the PostgreSQL database of ``url`` when given: its tables made when opened, each
    statement atomic on its own (SQL both backends speak)."""

    def __init__(
        self, path: Path, schema: str, what: str = "Gallery", url: str | None = None
    ) -> None:
        from facelens.storage.postgres import PostgresDatabase  # psycopg only when asked for

        self.path = path
        self.db: Database | PostgresDatabase = (
            Database.open(path, what) if url is None else PostgresDatabase.open(url, what)
        )
        try:
            self.db.script(schema)
        except BaseException:
            self.db.close()
            raise

    def _run(self, sql: str, args: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        """A statement that writes."""
        return self.db.execute(sql, args)

    def _read(self, sql: str, args: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        """A statement that only reads (it waits for no write)."""
        return self.db.read(sql, args)

    def close(self) -> None:
        self.db.close()
