"""The gallery's SQLite file as a whole: transactions, its health (SQLite's quick_check; damage,
once found, is remembered and nothing more is written), consistent backups, and the model it
is bound to (checked before writes and reads, switched by a migration). The gallery's other
parts (people, faces, stored vectors) read and write through it."""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from facelens.errors import GalleryDamaged, StorageError
from facelens.gallery import schema
from facelens.models.profiles import ModelProfile
from facelens.storage.connection import Connection
from facelens.storage.errors import damage_message, is_damage, storage_error
from facelens.storage.sqlite import Database, connect_read_only, online_copy, quick_check_file

log = logging.getLogger(__name__)

# What identifies the file's bytes on disk as we last vouched for them: a change by anyone
# else (another process, a copy over it, a failing disk's repair) is checked before we write.
_Stamp = tuple[int, int, int, int]


class GalleryFile:
    """One gallery file, open, bound to ``profile`` by whoever opens it (``SQLiteGallery``).
    ``read_only``: opened without writing anything anywhere (commands that only read work on a
    full or read-only disk); opened for writing when it must be created or upgraded first."""

    profile: ModelProfile

    unreachable = None  # a file is always at hand
    events_url = None  # the event log is a file beside it

    def __init__(self, path: Path, *, read_only: bool = False) -> None:
        self.path = path
        self.where = str(path)
        self.data_dir = path.parent
        self.read_only = read_only
        self.lock = threading.RLock()  # the gallery's state; then its file's (never after)
        self._damaged: str | None = None
        self._checked_at = 0.0
        self._vouched: _Stamp | None = None  # the file as last checked, or written by us
        self._db = Database.open_read_only(path) if read_only else Database.open(path)
        try:
            if self.health():
                raise GalleryDamaged(self._damaged or "")
        except BaseException:
            self._db.close()
            raise

    def open_for_writing(self) -> None:
        """Replace a read-only connection by a writing one (to create or upgrade the file)."""
        with self.lock:
            if self.read_only:
                self._db.close()
                self._db = Database.open(self.path)
                self.read_only = False

    # -- plumbing ---------------------------------------------------------------------------

    @property
    def damaged(self) -> str | None:
        """What is wrong with the file, with what to do, once damage was found; else None."""
        return self._damaged

    def _mark_damaged(self, problems: list[str]) -> GalleryDamaged:
        """Remember the damage (the first report stays): nothing more is written."""
        if self._damaged is None:
            self._damaged = damage_message(self.path, problems)
            log.error("%s", self._damaged)
        return GalleryDamaged(self._damaged)

    def _failure(self, exc: sqlite3.Error) -> StorageError:
        """Our error for SQLite's ``exc``; damage is remembered."""
        return self._mark_damaged([str(exc)]) if is_damage(exc) else storage_error(self.path, exc)

    def _stamp(self) -> _Stamp | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)

    def _check_if_changed(self) -> None:
        """Before a write: if someone else changed the file since we last vouched for it, check
        it first, so nothing is written into a file damaged under us."""
        stamp = self._stamp()
        if stamp is not None and stamp == self._vouched:
            return
        self._checked_at = time.monotonic()
        problems = self.quick_check()
        if problems:
            raise self._mark_damaged(problems)
        self._vouched = stamp

    def check_writable(self) -> None:
        """Raise unless the file may be written: not damaged (known, or found now if someone
        else changed it since we last vouched for it), not opened only for reading. For the
        stores that write beside the gallery in the same file, too (idempotency records)."""
        with self.lock:
            if self._damaged is not None:
                raise GalleryDamaged(self._damaged)
            if self.read_only:
                raise StorageError(f"The gallery {self.path} was opened only for reading.")
            self._check_if_changed()

    @contextmanager
    def transaction(self, *, erases: bool = False) -> Iterator[sqlite3.Connection]:
        """One write transaction; rolled back whole on any error; none into a damaged file.
        ``erases``: it deletes biometric data, so the WAL is emptied into the file afterwards
        (whose deleted content ``secure_delete`` overwrote): no copy of it stays on disk."""
        with self.lock:
            self.check_writable()
            with self._db.transaction(self._failure) as db:
                yield db
            if erases:
                self._empty_wal()
            self._vouched = self._stamp()

    def _empty_wal(self) -> None:
        """Checkpoint the WAL into the file and truncate it (the deletion is committed: a
        failure here is logged, and the next checkpoint does it)."""
        reason = self._db.checkpoint()
        if reason is not None:
            log.warning(
                "gallery %s: deleted data stays in its -wal file until the next checkpoint (%s)",
                self.path,
                reason,
            )

    def stream(self, sql: str, args: Sequence[object] = ()) -> Iterator[list[tuple[Any, ...]]]:
        """The rows of one read, in chunks (the caller holds :attr:`lock`)."""
        return self._db.stream(sql, args, failure=self._failure)

    def read(self, sql: str, args: Sequence[object] = ()) -> list[tuple[object, ...]]:
        with self.lock:
            return self._db.read(sql, args, self._failure)

    @staticmethod
    def bump(db: Connection) -> None:
        """Within a write: the gallery changed (what cached its vectors reads them again)."""
        db.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'revision'")

    def revision(self) -> int:
        """How many times the gallery changed: the same number, the same stored vectors."""
        return int(str(self.read("SELECT value FROM meta WHERE key = 'revision'")[0][0]))

    # -- health -----------------------------------------------------------------------------

    def quick_check(self) -> list[str]:
        """SQLite's ``quick_check`` of the whole file as it is on disk: its problems, none
        when it is sound (:class:`StorageError` if it cannot be read, which is not damage)."""
        return quick_check_file(self.path)

    def health(self, max_age_s: float = 0.0) -> list[str]:
        """The file's problems: damage found by any operation, or by ``quick_check``, which runs
        when someone else changed the file since it was last checked and at least every
        ``max_age_s`` seconds. Damage is remembered: from then on nothing is written."""
        if self._damaged is None:
            stamp = self._stamp()
            if stamp != self._vouched or time.monotonic() - self._checked_at >= max_age_s:
                self._checked_at = time.monotonic()
                problems = self.quick_check()
                if problems:
                    self._mark_damaged(problems)
                elif stamp == self._stamp():
                    self._vouched = stamp
        return [] if self._damaged is None else [self._damaged]

    # -- the model --------------------------------------------------------------------------

    def backup(self, target: Path) -> None:
        """A consistent copy of the whole gallery file (keys included) at ``target``, a new
        file readable by its owner only (it holds biometric data)."""
        with self.lock, self._db.reading(self._failure) as db:
            online_copy(db, target, self._failure, "write the backup")

    def backup_before_upgrade(self, version: int) -> Path:
        """Copy the file, as it is at schema ``version``, beside itself before its schema is
        upgraded (as ``gallery backup`` copies it: consistent, its owner's only). An older
        facelens refuses a newer schema, so this copy is the way back; it holds biometric
        data, so it is named in the log, to be deleted once the new version is proven."""
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        target = self.path.with_name(f"{self.path.name}.schema-v{version}-{stamp}.bak")
        try:
            # Read by a connection of its own: ours holds the upgrade's write transaction (a
            # backup cannot read from a connection that writes), which also keeps anyone
            # else from changing the file until the upgrade is committed.
            reader = connect_read_only(self.path)
            try:
                online_copy(reader, target, self._failure, "write the backup")
            finally:
                reader.close()
        except StorageError as exc:
            target.unlink(missing_ok=True)
            raise StorageError(
                f"The gallery {self.path} must be upgraded (schema version {version} to "
                f"{schema.LATEST}), and a copy of it is made first, which failed: "
                f"{exc.message} Nothing was changed."
            ) from None
        return target

    def require_bound(self, db: Connection) -> None:
        """Inside a write: refuse if another process moved the gallery to another model."""
        schema.require_bound(db, self.profile, self.where)

    def check_model(self) -> None:
        """:class:`ModelError` if another process migrated the gallery to another model."""
        with self.lock, self._db.reading(self._failure) as db:
            self.require_bound(db)

    def close(self) -> None:
        with self.lock:
            self._db.close()
