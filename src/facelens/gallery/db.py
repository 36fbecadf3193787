"""The SQLite file under the data directory: connections in WAL mode, storage errors that say
what to do, and small stores that live beside the gallery in the same file (API keys,
idempotency records)."""

from __future__ import annotations

import sqlite3
import threading
from datetime import UTC, datetime
from pathlib import Path

from facelens.errors import StorageError


def now_text() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def storage_error(path: Path, exc: sqlite3.Error) -> StorageError:
    text = str(exc)
    if "full" in text:
        hint = "the disk is full; free some space and run the command again"
    elif "readonly" in text or "unable to open" in text or "permission" in text.lower():
        hint = "it is not writable; fix its permissions or choose another --data-dir"
    elif "not a database" in text or "malformed" in text:
        hint = (
            "the file is not a facelens gallery or is damaged; restore it from a backup "
            "('facelens gallery backup' makes one), or move it away to start afresh; "
            "'facelens gallery check' lists what is wrong"
        )
    else:
        hint = text
    return StorageError(f"Gallery {path}: {hint} ({text}).")


def connect(path: Path) -> sqlite3.Connection:
    """An autocommit connection in WAL mode, shareable across threads (callers lock)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(
            f"Cannot create the data directory {path.parent}: {exc.strerror or exc}. "
            "Fix its permissions or choose another --data-dir / FACELENS_DATA_DIR."
        ) from None
    try:
        db = sqlite3.connect(path, timeout=30, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA foreign_keys = ON")
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = NORMAL")
    except sqlite3.Error as exc:
        raise storage_error(path, exc) from None
    return db


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


def check_file(path: Path) -> list[str]:
    """SQLite's ``quick_check`` of a gallery file, read only, however damaged: its problems,
    none when it is sound (for ``facelens gallery check``)."""
    if not path.is_file():
        raise StorageError(f"There is no gallery at {path}.")
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            found = [str(row[0]) for row in db.execute("PRAGMA quick_check").fetchall()]
        finally:
            db.close()
    except sqlite3.Error as exc:
        return [str(exc)]
    return [] if found == ["ok"] else found
