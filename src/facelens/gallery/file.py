"""The gallery's SQLite file as a whole: transactions, its health (SQLite's quick_check, no
writes into a damaged file), consistent backups, and the model it is bound to (checked before
writes and reads, switched by a migration). ``SQLiteGallery`` adds people and faces to it."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from facelens.errors import Conflict, ModelError, StorageError
from facelens.gallery import schema
from facelens.gallery.base import NewFace
from facelens.gallery.db import connect, storage_error
from facelens.matching import GalleryIndex
from facelens.models.profiles import ModelProfile


class GalleryFile:
    """One gallery file, open, bound to ``profile`` by the subclass."""

    profile: ModelProfile

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.RLock()
        self._cache: tuple[int, GalleryIndex] | None = None
        self._damaged: str | None = None
        self._checked_at = 0.0
        self._db = connect(path)

    # -- plumbing ---------------------------------------------------------------------------

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; rolled back whole on any error; none into a damaged file."""
        if self._damaged is not None:
            raise StorageError(self._damaged)
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    yield self._db
                except BaseException:
                    # SQLite may already have rolled back (e.g. on SQLITE_FULL): a second
                    # ROLLBACK would fail and hide the real error.
                    if self._db.in_transaction:
                        self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise storage_error(self.path, exc) from None

    def _read(self, sql: str, args: Sequence[object] = ()) -> list[tuple[object, ...]]:
        with self._lock:
            try:
                return self._db.execute(sql, args).fetchall()
            except sqlite3.Error as exc:
                raise storage_error(self.path, exc) from None

    @staticmethod
    def _bump(db: sqlite3.Connection) -> None:
        db.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'revision'")

    # -- health -----------------------------------------------------------------------------

    def quick_check(self) -> list[str]:
        """SQLite's ``quick_check`` of the whole file: its problems, none when it is sound."""
        rows = self._read("PRAGMA quick_check")
        found = [str(row[0]) for row in rows]
        return [] if found == ["ok"] else found

    def health(self, max_age_s: float = 0.0) -> list[str]:
        """The file's problems (``quick_check``, at most every ``max_age_s`` seconds); a damaged
        file is then refused for writing, with what to do."""
        if self._damaged is None and time.monotonic() - self._checked_at >= max_age_s:
            self._checked_at = time.monotonic()
            problems = self.quick_check()
            if problems:
                self._damaged = (
                    f"The gallery {self.path} is damaged ({problems[0]}"
                    + (f", and {len(problems) - 1} more problems" if len(problems) > 1 else "")
                    + "); nothing more is written to it. Restore it from a backup ('facelens "
                    "gallery backup' makes one), or move it away to start afresh; 'facelens "
                    "gallery check' lists what is wrong."
                )
        return [] if self._damaged is None else [self._damaged]

    # -- the model --------------------------------------------------------------------------

    def backup(self, target: Path) -> None:
        """A consistent copy of the whole gallery file (keys included) at ``target``."""
        with self._lock:
            try:
                copy = sqlite3.connect(target)
                try:
                    self._db.backup(copy)
                finally:
                    copy.close()
            except sqlite3.Error as exc:
                raise storage_error(target, exc) from None

    def switch_model(
        self, profile: ModelProfile, kept: Mapping[int, NewFace], expected: Collection[int]
    ) -> None:
        """In one transaction: bind the gallery to ``profile``, give each face in ``kept`` its
        new embedding and box (and sharpness and thumbnail, when given; ids stay), delete every
        other face, and forget every file left with no face (so the next enrolment takes them
        afresh). ``expected`` are the face ids
        the caller planned for: if the gallery changed since, nothing is done."""
        with self._transaction() as db:
            self._require_bound(db)
            current = {int(row[0]) for row in db.execute("SELECT id FROM faces")}
            if current != set(expected):
                raise Conflict(
                    f"The gallery {self.path} changed while it was being migrated (faces were "
                    "added or removed); nothing was changed. Run the migration again."
                )
            for face_id, face in kept.items():
                db.execute(
                    "UPDATE faces SET embedding = ?, box_left = ?, box_top = ?, box_right = ?, "
                    "box_bottom = ?, sharpness = COALESCE(?, sharpness) WHERE id = ?",
                    (
                        np.ascontiguousarray(face.embedding, dtype="<f4").tobytes(),
                        face.box.left,
                        face.box.top,
                        face.box.right,
                        face.box.bottom,
                        face.sharpness,
                        face_id,
                    ),
                )
                if face.thumbnail is not None:
                    db.execute(
                        "INSERT OR REPLACE INTO face_thumbnails VALUES (?, ?)",
                        (face_id, face.thumbnail),
                    )
            db.executemany(
                "DELETE FROM faces WHERE id = ?", [(i,) for i in sorted(current - set(kept))]
            )
            db.execute(
                "DELETE FROM sources WHERE NOT EXISTS "
                "(SELECT 1 FROM faces WHERE faces.source_id = sources.id)"
            )
            schema.record_profile(db, profile)
            self._bump(db)
        self.profile = profile
        self._cache = None

    def _require_bound(self, db: sqlite3.Connection) -> None:
        """Inside a write: refuse if another process moved the gallery to another model."""
        now = schema.bound_profile(db)
        if now is not None and now.id != self.profile.id:
            raise ModelError(
                f"The gallery {self.path} was migrated to the {now.name} model while this "
                f"process runs {self.profile.name}; restart it to use the migrated gallery."
            )

    def check_model(self) -> None:
        """:class:`ModelError` if another process migrated the gallery to another model."""
        with self._lock:
            try:
                self._require_bound(self._db)
            except sqlite3.Error as exc:
                raise storage_error(self.path, exc) from None

    def close(self) -> None:
        with self._lock:
            self._db.close()
