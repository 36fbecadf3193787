"""The SQLite file under the data directory: connections in WAL mode (or read only, for commands
that only read), storage errors told apart from damage, each saying what to do, and small
stores that live beside the gallery in the same file (API keys, idempotency records)."""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
import stat
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

from facelens.errors import GalleryDamaged, StorageError
from facelens.settings import EVENTS_FILE

# SQLite's primary result codes (the low byte of an extended code such as SQLITE_IOERR_SHMSIZE).
_PERM, _BUSY, _LOCKED, _READONLY, _IOERR = 3, 5, 6, 8, 10
_CORRUPT, _FULL, _CANTOPEN, _NOTADB = 11, 13, 14, 26
# Failures to reach the file, which say nothing about its content.
_UNREACHABLE = frozenset({_PERM, _READONLY, _IOERR, _FULL, _CANTOPEN})


def now_text() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _primary(exc: sqlite3.Error) -> int | None:
    code = getattr(exc, "sqlite_errorcode", None)
    return None if code is None else int(code) & 0xFF


def is_damage(exc: sqlite3.Error) -> bool:
    """SQLite found the file malformed or not a database (SQLITE_CORRUPT, SQLITE_NOTADB): its
    content is damaged. A full disk, a read-only filesystem or an I/O error is not damage."""
    code = _primary(exc)
    if code is None:  # raised by Python's sqlite3 module itself: only its text tells
        text = str(exc)
        return "malformed" in text or "not a database" in text
    return code in (_CORRUPT, _NOTADB)


def damage_message(path: Path, problems: list[str]) -> str:
    """What to say of a damaged gallery, and what to do: restore or move away, never write."""
    more = f", and {len(problems) - 1} more problems" if len(problems) > 1 else ""
    what = (
        "is not a facelens gallery or is damaged"
        if any("not a database" in p for p in problems)
        else "is damaged"
    )
    return (
        f"The gallery {path} {what} ({problems[0]}{more}); nothing more is written to it. "
        "Restore it from a backup ('facelens gallery backup' makes one; stop the server "
        "first), or move it away to start afresh; 'facelens gallery check' lists what is wrong."
    )


_NOT_DAMAGE = "keep the file: this is no sign of damage"
_NEARLY_FULL_BYTES = 1 << 20  # SQLite fails to grow a file or make its -shm below this


def _disk_state(path: Path) -> str | None:
    """'read only' or 'full' when the filesystem holding ``path`` is, else None (SQLite's I/O
    errors do not say which: SQLITE_IOERR_SHMSIZE is what a full disk gives, for one)."""
    try:
        found = os.statvfs(path.parent)
    except OSError:
        return None
    if found.f_flag & os.ST_RDONLY:
        return "read only"
    return "full" if found.f_bavail * found.f_frsize < _NEARLY_FULL_BYTES else None


def not_ours(path: Path) -> str | None:
    """Why this process may not write ``path`` (a file, or the folder to hold it) and what to
    do: whose it is and whose we are, with the ``chown`` that fixes it. None if it may.

    Containers meet this first: a host folder bind-mounted as root's, or an image run as an
    arbitrary uid (OpenShift) on a volume another uid made."""
    folder = path.parent
    while not folder.exists() and folder != folder.parent:  # the folder to be made in
        folder = folder.parent
    if not os.access(folder, os.W_OK | os.X_OK):
        culprit = folder
    elif path.exists() and not os.access(path, os.W_OK):
        culprit = path
    else:
        return None
    try:
        st = culprit.stat()
    except OSError:
        return None
    uid, gid = os.geteuid(), os.getegid()
    fix = folder if culprit == path else culprit
    return (
        f"{culprit} belongs to uid {st.st_uid} and gid {st.st_gid} (mode "
        f"{stat.S_IMODE(st.st_mode):o}) and this process runs as uid {uid}, gid {gid}, which "
        f"may not write it: give the folder to this user ('chown -R {uid} {fix}'; for a "
        "container, the host folder mounted there), or to a group it is in ('chgrp -R "
        f"{gid} {fix} && chmod -R g+rwX {fix}'), or choose another --data-dir / "
        "FACELENS_DATA_DIR"
    )


def storage_error(path: Path, exc: sqlite3.Error) -> StorageError:
    """Our error for a failure of SQLite on ``path``: :class:`GalleryDamaged` for damage, else a
    :class:`StorageError` that says what to fix and never advises discarding the file."""
    text = str(exc)
    if is_damage(exc):
        return GalleryDamaged(damage_message(path, [text]))
    code = _primary(exc)
    name = getattr(exc, "sqlite_errorname", None) or text
    if code is None:  # raised by Python's sqlite3 module itself: only its text tells
        code = _FULL if "full" in text else _READONLY if "readonly" in text else None
    disk = _disk_state(path) if code in _UNREACHABLE else None
    ownership = not_ours(path) if code in (_READONLY, _CANTOPEN, _PERM) else None
    if code == _FULL or disk == "full":
        hint = f"the disk is full; free some space and run the command again ({_NOT_DAMAGE})"
    elif ownership is not None and disk is None:
        hint = ownership
    elif code == _READONLY or disk == "read only":
        hint = (
            "it is read only (a read-only filesystem or mount, or its permissions); make it "
            f"writable or choose another --data-dir ({_NOT_DAMAGE})"
        )
    elif code in (_CANTOPEN, _PERM):
        hint = (
            "it cannot be opened (its permissions or its folder's: SQLite also needs to make "
            "its -wal and -shm files beside it); fix that or choose another --data-dir"
        )
    elif code == _IOERR:
        hint = (
            "the disk could not be read or written (a failing device, or a network share that "
            f"went away); fix the storage and run again ({_NOT_DAMAGE}; 'facelens gallery "
            "check' tells afterwards)"
        )
    elif code in (_BUSY, _LOCKED):
        hint = "another process holds it locked for longer than 30 s; run the command again"
    else:
        hint = text
    what = "Event log" if path.name == EVENTS_FILE else "Gallery"
    return StorageError(f"{what} {path}: {hint} ({text}; {name}).")


def os_storage_error(path: Path, exc: OSError, doing: str) -> StorageError:
    """Our error for an operating-system failure ``doing`` something to ``path``."""
    hints = {
        errno.ENOSPC: "the disk is full; free some space and run the command again",
        errno.EDQUOT: "the disk quota is used up; free some space and run the command again",
        errno.EROFS: "the filesystem is read only; choose a writable place",
        errno.EACCES: "permission denied; fix its permissions or choose another place",
        errno.EPERM: "permission denied; fix its permissions or choose another place",
    }
    hint = hints.get(exc.errno or 0, exc.strerror or str(exc))
    return StorageError(f"Cannot {doing} {path}: {hint}.")


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


def connect(path: Path) -> sqlite3.Connection:
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
    try:
        db = sqlite3.connect(path, timeout=30, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA foreign_keys = ON")
        db.execute("PRAGMA secure_delete = ON")
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = NORMAL")
    except sqlite3.Error as exc:
        raise storage_error(path, exc) from None
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


def connect_read_only(path: Path) -> sqlite3.Connection:
    """A connection that reads ``path`` and writes nothing anywhere, for commands that only
    read. On a full disk or a read-only filesystem SQLite cannot make the ``-shm`` file that
    connections share; when no ``-wal`` file holds changes the main file lacks (nobody has the
    gallery open), the file is then read as it stands (SQLite's ``immutable``)."""
    try:
        return _connect_read_only(path)
    except sqlite3.Error as exc:
        raise storage_error(path, exc) from None


def quick_check_file(path: Path) -> list[str]:
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
        raise storage_error(path, exc) from None
    return [] if found == ["ok"] else found


def check_file(path: Path) -> list[str]:
    """:func:`quick_check_file` of a gallery file, however damaged (for ``facelens gallery
    check``)."""
    if not path.is_file():
        raise StorageError(f"There is no gallery at {path}.")
    return quick_check_file(path)


class SQLiteStore:
    """A small table of its own beside the gallery (API keys, idempotency records)."""

    def __init__(self, path: Path, schema: str) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._db = connect(path)
        self._run(schema)

    def _run(self, sql: str, args: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        """One statement, atomic on its own."""
        with self._lock:
            try:
                return self._db.execute(sql, args).fetchall()
            except sqlite3.Error as exc:
                raise storage_error(self.path, exc) from None

    def close(self) -> None:
        with self._lock:
            self._db.close()
